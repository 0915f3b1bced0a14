// The one logger of a `weir` command. On a terminal (stderr is a TTY) lines stay plain text for a person
// (the live progress line is drawn beside them); otherwise every line is one JSON object (pino), for log
// collectors: level, time, msg, job, worker, and subtask, checkpoint and err (with its cause chain) where
// the call knows them. Levels below `--log-level` are dropped in both forms.

import pino from "pino";
import { InvalidArgumentError } from "commander";
import { LogLevels, type LogFields, type LogFn, type LogLevel } from "../core/log.ts";

export function parseLogLevel(v: string): LogLevel {
  if ((LogLevels as readonly string[]).includes(v)) return v as LogLevel;
  throw new InvalidArgumentError(`--log-level expects one of ${LogLevels.join(", ")}, got "${v}"`);
}

const RANK: Readonly<Record<LogLevel, number>> = { trace: 10, debug: 20, info: 30, warn: 40, error: 50, fatal: 60 };
/** The cause chain is cut here: a cycle or a runaway chain must not make a log line unbounded. */
const MAX_CAUSES = 8;

/** An error as JSON: type, message, code, stack, and its `cause` the same way (recursively). */
export function serializeError(e: unknown, depth = 0): unknown {
  if (!(e instanceof Error)) return typeof e === "object" && e !== null ? { message: JSON.stringify(e) } : { message: String(e) };
  const code = (e as { code?: unknown }).code;
  const cause = (e as { cause?: unknown }).cause;
  return {
    type: e.name,
    message: e.message,
    ...(code !== undefined ? { code } : {}),
    ...(e.stack ? { stack: e.stack } : {}),
    ...(cause !== undefined && depth < MAX_CAUSES ? { cause: serializeError(cause, depth + 1) } : {}),
  };
}

export interface WeirLogger {
  readonly json: boolean;
  readonly level: LogLevel;
  /** For the job (EnvironmentHooks.log): every runtime log line goes through here. */
  readonly log: LogFn;
  /** A line of the command itself ("running", "stopping"); on a terminal printed as `weir: <message>`. */
  command(message: string, fields?: LogFields & { readonly [field: string]: unknown }): void;
  enabled(level: LogLevel): boolean;
  /** Writes out what is buffered (before exit, on a signal, after a fatal error). */
  flush(): void;
}

export interface LoggerOptions {
  readonly job: string;
  readonly level: LogLevel;
  readonly stream?: NodeJS.WriteStream;
  /** Force a form (tests); default: JSON unless the stream is a TTY. */
  readonly json?: boolean;
}

export function createLogger(o: LoggerOptions): WeirLogger {
  const stream = o.stream ?? process.stderr;
  const json = o.json ?? !stream.isTTY;
  const enabled = (level: LogLevel) => RANK[level] >= RANK[o.level];
  if (json) return jsonLogger(o, stream, enabled);
  const colors = useColors(stream);
  const paint = (level: LogLevel, text: string) => {
    if (!colors || RANK[level] < RANK.warn) return text;
    return `${RANK[level] >= RANK.error ? "\x1b[31m" : "\x1b[33m"}${text}\x1b[39m`;
  };
  return {
    json: false,
    level: o.level,
    enabled,
    log: (message, fields) => {
      const level = fields?.level ?? "info";
      if (!enabled(level)) return;
      const who = fields?.worker ? ` ${fields.worker}` : "";
      stream.write(`${paint(level, `[weir ${o.job}${who}] ${message}`)}\n`);
    },
    command: (message, fields) => {
      const level = fields?.level ?? "info";
      if (enabled(level)) stream.write(`${paint(level, `weir: ${message}`)}\n`);
    },
    flush: () => {},
  };
}

function jsonLogger(o: LoggerOptions, stream: NodeJS.WriteStream, enabled: (l: LogLevel) => boolean): WeirLogger {
  // Synchronous writes: a line is out before the process can die (SIGTERM, a fatal error, process.exit).
  const fd = (stream as { fd?: number }).fd ?? 2;
  const destination = pino.destination({ fd, sync: true });
  const base: pino.Logger = pino({
    level: o.level,
    base: { job: o.job },
    messageKey: "msg",
    // serializeError below keeps the whole cause chain; pino's own `err` serializer would fold it into one message.
    serializers: { err: (v: unknown) => v },
    timestamp: pino.stdTimeFunctions.isoTime,
    formatters: { level: (label) => ({ level: label }) },
  }, destination);
  const write = (message: string, fields?: LogFields & { readonly [field: string]: unknown }) => {
    const { level = "info", err, ...rest } = fields ?? ({} as LogFields);
    if (!enabled(level)) return;
    base[level]({ ...rest, ...(err !== undefined ? { err: serializeError(err) } : {}) }, message);
  };
  return {
    json: true,
    level: o.level,
    enabled,
    log: (message, fields) => write(message, fields as LogFields & { readonly [field: string]: unknown }),
    // The command's own lines read as on a terminal ("weir: running <job> ..."), whichever the form.
    command: (message, fields) => write(`weir: ${message}`, fields),
    flush: () => { try { destination.flushSync(); } catch { /* nothing buffered, or the stream is gone */ } },
  };
}

/** Colours on a terminal unless NO_COLOR (https://no-color.org) or FORCE_COLOR=0 says otherwise. */
function useColors(stream: NodeJS.WriteStream): boolean {
  if (process.env.NO_COLOR !== undefined && process.env.NO_COLOR !== "") return false;
  if (process.env.FORCE_COLOR === "0") return false;
  return Boolean(stream.isTTY);
}
