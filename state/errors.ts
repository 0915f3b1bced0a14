// Errors of the state layer: every one is a WeirError with a code, a one-line message naming the state
// and the key, and the underlying error as `cause`.

import { ErrorCode, WeirError } from "../runtime/core/errors.ts";

/** How a key appears in messages: its JSON, shortened so that a message stays one readable line. */
export function describeKey(key: unknown): string {
  let s: string;
  try { s = JSON.stringify(key) ?? String(key); } catch { s = String(key); }
  return shortened(s, 120, 117);
}

/** `s`, or its first `keep` characters and "..." when longer than `max`; never cut inside a surrogate pair (an emoji), whose lone half prints as �. */
export function shortened(s: string, max: number, keep: number): string {
  if (s.length <= max) return s;
  const c = s.charCodeAt(keep - 1);
  return `${s.slice(0, c >= 0xd800 && c <= 0xdbff ? keep - 1 : keep)}...`;
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

/**
 * A conditional KV write refused: the key changed since this backend last read or wrote it, so another
 * writer (the subtask that took the key group over) holds it now. The write changed nothing.
 */
export class StateWriteConflictError extends StateAccessError {
  constructor(readonly bucket: string, readonly kvKey: string, readonly expectedSeq: number, options?: { cause?: unknown }) {
    super(`KV key ${kvKey} of bucket ${bucket} was written by another writer since this subtask last read or wrote it (it expected the key's message ${expectedSeq === 0 ? "to be absent" : `#${expectedSeq}`}): its key group belongs to another subtask now (was this worker frozen and fenced?); the write was refused`, options);
    this.name = "StateWriteConflictError";
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
