// Every error weir raises on purpose is a WeirError with a code from ErrorCode; `describeError` is the one
// place that turns any thrown value into the one-line message the CLI prints.

import { preview } from "./preview.ts";

export const ErrorCode = {
  InvalidOption: "INVALID_OPTION",
  InvalidJob: "INVALID_JOB",
  InvalidGraph: "INVALID_GRAPH",
  NatsUnreachable: "NATS_UNREACHABLE",
  /** The NATS server refused the credentials weir connected with. */
  NatsAuth: "NATS_AUTH",
  /** The NATS server denied a publish or subscription weir needs (the user's permissions). */
  NatsPermission: "NATS_PERMISSION",
  PortTaken: "PORT_TAKEN",
  ServerStart: "SERVER_START",
  UserFunction: "USER_FUNCTION",
  StateCodec: "STATE_CODEC",
  StateAccess: "STATE_ACCESS",
  StateLimit: "STATE_LIMIT",
  Source: "SOURCE",
  Sink: "SINK",
  Scenario: "SCENARIO",
  Checkpoint: "CHECKPOINT",
  Cancelled: "CANCELLED",
  Stalled: "STALLED",
  Budget: "BUDGET",
  /** Frames lost between subtasks, or the NATS connection lost while a job ran. */
  Transport: "TRANSPORT",
  /** A worker of the job died, hung or was cut off: its subtasks restart on the others. */
  WorkerLost: "WORKER_LOST",
  /** The checkpoint a run starts from cannot be restored into this job: starting it again would not help. */
  Restore: "RESTORE",
  /** A source stream was deleted and created again under the job: its position there means nothing (no restart mends it). */
  StreamRecreated: "STREAM_RECREATED",
  /** A stream weir reads or writes is set up so that no restart helps (its retention, its subjects). */
  StreamConfig: "STREAM_CONFIG",
} as const;
export type ErrorCode = (typeof ErrorCode)[keyof typeof ErrorCode];

export class WeirError extends Error {
  readonly code: ErrorCode;
  constructor(code: ErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
    this.name = "WeirError";
  }
}

/** A user function (map, process, selector, ...) threw or rejected. Names operator, subtask and key. */
export class UserFunctionError extends WeirError {
  constructor(readonly operator: string, readonly subtask: number, readonly key: unknown, cause: unknown) {
    const where = key === undefined ? "" : ` for key ${preview(key, 80)}`;
    super(ErrorCode.UserFunction, `operator "${operator}" (subtask ${subtask}) failed${where}: ${messageOf(cause)}`, { cause });
    this.name = "UserFunctionError";
  }
}

/**
 * A connector's own error (a source reader's createReader or pollNext, a sink writer's createWriter,
 * write, flush or close threw) naming the operator and subtask; weir's errors say what they are already.
 */
export function connectorError(operator: string, subtask: number, e: unknown): Error {
  return e instanceof WeirError ? e : new UserFunctionError(operator, subtask, undefined, e);
}

/** The code of the first WeirError in `e`'s chain of causes: what a worker tells the leader with its failure's text. */
export function errorCodeOf(e: unknown): ErrorCode | undefined {
  for (let x: unknown = e, depth = 0; x instanceof Error && depth < 10; x = x.cause, depth++) if (x instanceof WeirError) return x.code;
  return undefined;
}

/** A failure another process described: its text, and its code as the cause (hasErrorCode finds it, restart decisions read it). */
export function describedFailure(message: string, remote: { error: string; code?: string | undefined }, code: ErrorCode | undefined = undefined): Error {
  const known = Object.values(ErrorCode).find((c) => c === remote.code);
  const cause = known ? { cause: new WeirError(known, remote.error) } : undefined;
  return code ? new WeirError(code, message, cause) : new Error(message, cause);
}

/** Whether `e`, or an error in its chain of causes, is a WeirError with `code`. */
export function hasErrorCode(e: unknown, code: ErrorCode): boolean {
  for (let x: unknown = e, depth = 0; x instanceof Error && depth < 10; x = x.cause, depth++) {
    if (x instanceof WeirError && x.code === code) return true;
  }
  return false;
}

export function messageOf(e: unknown): string {
  if (e instanceof Error) return e.message;
  // `throw undefined` (or null): JSON.stringify gave undefined, printed as a bare "undefined".
  if (e === undefined || e === null) return `${String(e)} was thrown, not an Error`;
  return typeof e === "string" ? e : (JSON.stringify(e) ?? String(e));
}

/** One line for a human: the message of a WeirError, or of anything else with its type. */
export function describeError(e: unknown): string {
  if (e instanceof WeirError) return e.message.split("\n")[0]!;
  if (e instanceof Error) {
    const code = (e as { code?: unknown }).code;
    if (code === "ECONNREFUSED" || /CONNECTION_REFUSED|connection refused/i.test(e.message)) {
      return `cannot reach NATS: ${e.message}`;
    }
    // The server's answer to a publish or subscription the user's permissions do not allow.
    if (/Permissions Violation/.test(e.message)) return `the NATS user lacks a permission weir needs: ${e.message.split("\n")[0]}`;
    return `${e.name}: ${e.message.split("\n")[0]}`;
  }
  return String(e);
}
