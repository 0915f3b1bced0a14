// KV key layout (docs/state.md): one KV key per state entry,
//   <operator>.<state>.<keyGroup>.<keyId>                 value, list, reducing, aggregating; a map's key index
//   <operator>.<state>.<keyGroup>.<keyId>.<userKeyId>     one map entry
//   <any of the above>./c-<writeId>-<n>                   chunk n of a value larger than the server's max payload
// Every token is encoded reversibly with weir's one KV key encoding (runtime/core/kv-keys.ts: [A-Za-z0-9_-]
// stays, any other character becomes "=" and the hex of its UTF-8 bytes). Encoded tokens never contain "."
// "/" "*" ">", so a token starting with "/" is always weir's own (chunks, markers), never a user's.

import { shortened, StateLimitError } from "../../errors.ts";
import { decodeKeyTokens, encodeKeyToken } from "../../../runtime/core/kv-keys.ts";
import type { StateAddress } from "../../contracts.ts";

/** Longest KV key accepted: a PUB control line (subject + reply + size) must stay under the server's 4 KiB. */
export const MAX_KEY_LENGTH = 2048;

/** Reversible encoding of any non-empty string as one KV key token (runtime/core/kv-keys.ts). */
export function encodeToken(s: string): string {
  if (s.length === 0) throw new StateLimitError("an empty name or key cannot be stored");
  return encodeKeyToken(s);
}

export function decodeToken(token: string): string {
  return decodeKeyTokens(token);
}

/** `<operator>.<state>.<keyGroup>.<keyId>`: a plain state entry, or a map's key index. */
export function baseKey(a: StateAddress): string {
  return checkLength(`${encodeToken(a.operator)}.${encodeToken(a.state)}.${a.keyGroup}.${encodeToken(a.keyId)}`, a);
}

/** An encoded token is at most this many times its string's length (a UTF-16 unit: up to 3 UTF-8 bytes, each "=XX"). */
const MAX_ENCODED_PER_CHAR = 9;

/**
 * Throws as baseKey(a) would (an empty token, a key over MAX_KEY_LENGTH) without building the key when its
 * tokens are too short for it to be long: the heap backend checks each new key so, and encoding every one
 * cost ~0.2 µs a key (its regular expressions), a tenth of a new key's record.
 */
export function checkBaseKey(a: StateAddress): void {
  const chars = a.operator.length + a.state.length + a.keyId.length;
  const empty = a.operator.length === 0 || a.state.length === 0 || a.keyId.length === 0;
  if (empty || MAX_ENCODED_PER_CHAR * chars + 3 + String(a.keyGroup).length > MAX_KEY_LENGTH) baseKey(a);
}

/** The filter of every key of one operator's state (its first token; see baseKey). */
export function operatorKeys(operator: string): string {
  return `${encodeToken(operator)}.>`;
}

/** `<base>.<userKeyId>`: one map entry. */
export function mapEntryKey(base: string, userKeyId: string, a: StateAddress): string {
  return checkLength(`${base}.${encodeToken(userKeyId)}`, a);
}

export function chunkKey(key: string, writeId: string, n: number): string {
  return `${key}./c-${writeId}-${n}`;
}

/** The parts of a KV key (for tools and tests). */
export function parseKey(key: string): { operator: string; state: string; keyGroup: number; keyId: string; userKeyId?: string } {
  const [operator, state, keyGroup, keyId, userKeyId] = key.split(".");
  if (operator === undefined || state === undefined || keyGroup === undefined || keyId === undefined) throw new Error(`not a state key: ${key}`);
  const parts = { operator: decodeToken(operator), state: decodeToken(state), keyGroup: Number(keyGroup), keyId: decodeToken(keyId) };
  return userKeyId === undefined ? parts : { ...parts, userKeyId: decodeToken(userKeyId) };
}

function checkLength(key: string, a: StateAddress): string {
  if (key.length > MAX_KEY_LENGTH) {
    throw new StateLimitError(
      `state "${a.state}" for key ${shortened(a.keyId, 80, 80)}: the encoded key is ${key.length} characters, more than the ${MAX_KEY_LENGTH} a KV key may have`,
    );
  }
  return key;
}
