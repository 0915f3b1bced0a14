// The shape of weir's log calls: a one-line message, and optional fields a structured logger keeps apart
// (`weir run` writes them as JSON when stderr is not a terminal: runtime/cli/logger.ts). Plain loggers
// may ignore the fields; the message alone still says what happened.

export const LogLevels = ["trace", "debug", "info", "warn", "error", "fatal"] as const;
export type LogLevel = (typeof LogLevels)[number];

export interface LogFields {
  /** Default "info". */
  readonly level?: LogLevel;
  /** Subtask id, "<operator uid>#<index>". */
  readonly subtask?: string;
  readonly checkpoint?: number;
  readonly worker?: string;
  /** The error behind the message: a structured logger keeps its cause chain. */
  readonly err?: unknown;
}

export type LogFn = (message: string, fields?: LogFields) => void;
