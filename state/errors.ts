// Errors of the state layer: every one is a WeirError with a code, a one-line message naming the state
// and the key, and the underlying error as `cause`.

import { ErrorCode, WeirError } from "../runtime/core/errors.ts";

/** How a key appears in messages: its JSON, shortened so that a message stays one readable line. */
export function describeKey(key: unknown): string {
  let s: string;
  try { s = JSON.stringify(key) ?? String(key); } catch { s = String(key); }
  return s.length > 120 ? `${s.slice(0, 117)}...` : s;
}

/** A value (or map key) failed its io-ts codec on read or on write. */
export class StateCodecError extends WeirError {
  constructor(
    readonly state: string,
    readonly key: unknown,
    readonly operation: "read" | "write",
    /** PathReporter lines: where in the value the codec failed. */
    readonly paths: readonly string[],
    options?: { cause?: unknown },
  ) {
    super(
      ErrorCode.StateCodec,
      `state "${state}" for key ${describeKey(key)}: cannot ${operation} value: ${paths.join("; ").replace(/\s*\n\s*/g, " ")}${operation === "read" ? " (the stored value does not fit the state's codec: was the codec changed since it was written?)" : ""}`,
      options,
    );
    this.name = "StateCodecError";
  }
}

/** A request the backend cannot serve: key group not owned, backend closed, storage unreachable. */
export class StateAccessError extends WeirError {
  constructor(message: string, options?: { cause?: unknown }) {
    super(ErrorCode.StateAccess, message, options);
    this.name = "StateAccessError";
  }
}

/** A checkpoint's state that this backend cannot restore (another backend's, older than what KV holds, gone). */
export class StateRestoreError extends WeirError {
  constructor(message: string, options?: { cause?: unknown }) {
    super(ErrorCode.Restore, message, options);
    this.name = "StateRestoreError";
  }
}

/** A value or key beyond what the backend stores (refused whole, never truncated). */
export class StateLimitError extends WeirError {
  constructor(message: string, options?: { cause?: unknown }) {
    super(ErrorCode.StateLimit, message, options);
    this.name = "StateLimitError";
  }
}
