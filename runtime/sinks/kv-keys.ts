// KV keys: NATS KV allows [-/_=.A-Za-z0-9] with no empty "."-separated token. A record key is encoded
// reversibly (the default) with weir's one KV key encoding (runtime/core/kv-keys.ts, as keyed state's
// keys are): letters, digits, "-", "_", and "." and "/" between them stay as they are (readable in `nats kv`
// tools); any other character becomes "=" and its UTF-8 bytes in hex. `decodeKvKey(encodeKvKey(k)) === k`
// for every string. With keyEncoding "reject", a key NATS KV does not allow is an error instead.

import { ErrorCode, WeirError } from "../core/errors.ts";
import { decodeKey, encodeKey } from "../core/kv-keys.ts";

const VALID = /^[-/_=.A-Za-z0-9]+$/;

export function isValidKvKey(key: string): boolean {
  return VALID.test(key) && !key.startsWith(".") && !key.endsWith(".") && !key.includes("..");
}

export function encodeKvKey(key: string): string {
  return encodeKey(key);
}

export function decodeKvKey(stored: string): string {
  return decodeKey(stored);
}

export const KeyEncoding = { Encode: "encode", Reject: "reject" } as const;
export type KeyEncoding = (typeof KeyEncoding)[keyof typeof KeyEncoding];

/** The stored key for a record key (a string or a number), per the sink's `keyEncoding`. */
export function kvKeyFor(bucket: string, key: unknown, encoding: KeyEncoding): string {
  if (typeof key !== "string" && typeof key !== "number") {
    throw new WeirError(ErrorCode.Sink, `Sinks.kv (bucket "${bucket}"): the key must be a string or a number, got ${typeof key}`);
  }
  const k = String(key);
  if (encoding === KeyEncoding.Encode) return encodeKvKey(k);
  if (!isValidKvKey(k)) {
    throw new WeirError(ErrorCode.Sink, `Sinks.kv (bucket "${bucket}"): key ${JSON.stringify(k)} is not a valid NATS KV key (letters, digits, - / _ = . and no empty tokens); use keyEncoding "encode"`);
  }
  return k;
}
