// KV keys: NATS KV allows [-/_=.A-Za-z0-9] with no empty "."-separated token. A record key outside that
// is encoded reversibly (the default) or rejected:
//   a valid key not starting with "=" is stored as itself (readable in `nats kv` tools);
//   anything else is stored as "=" + base64url(UTF-8 bytes), which is always valid.
// The "=" prefix keeps the two sets disjoint, so `decodeKvKey(encodeKvKey(k)) === k` for every string.

import { ErrorCode, WeirError } from "../core/errors.ts";

const VALID = /^[-/_=.A-Za-z0-9]+$/;

export function isValidKvKey(key: string): boolean {
  return VALID.test(key) && !key.startsWith(".") && !key.endsWith(".") && !key.includes("..");
}

export function encodeKvKey(key: string): string {
  if (isValidKvKey(key) && !key.startsWith("=")) return key;
  return `=${Buffer.from(key, "utf8").toString("base64url")}`;
}

export function decodeKvKey(stored: string): string {
  return stored.startsWith("=") ? Buffer.from(stored.slice(1), "base64url").toString("utf8") : stored;
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
