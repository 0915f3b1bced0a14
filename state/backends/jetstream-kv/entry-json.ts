// Cache entries to and from what KV stores (JSON text), with the size checks and estimates on the way.

import { fromStateJson, toStateJson } from "../json-safe.ts";
import { lostInJson } from "../../../runtime/core/json-data.ts";
import type { StateAddress } from "../../contracts.ts";
import { StateAccessError, StateLimitError } from "../../errors.ts";
import { OrderedKeys } from "../ordered-keys.ts";
import { CacheEntry, EntryKind, INDEX_KEY_OVERHEAD_BYTES } from "./cache.ts";

const decoder = new TextDecoder();

/** The JSON stored in KV for an entry, undefined when the entry is to be deleted (absent value, empty map index). */
export function entryJson(e: CacheEntry): string | undefined {
  if (e.kind === EntryKind.Index) return indexJson(e.index);
  return e.json ?? (e.value === undefined ? undefined : toStateJson(e.value));
}

export function indexJson(keys: OrderedKeys): string | undefined {
  return keys.size === 0 ? undefined : JSON.stringify([...keys]);
}

export function serialize(value: unknown, address: StateAddress, maxBytes: number): string {
  let json: string | undefined;
  try {
    json = toStateJson(value);
  } catch (e) {
    // One line: V8's message for a cycle goes on with the path of the cycle on further lines.
    throw new StateAccessError(`state "${address.state}" for key ${address.keyId}: the value cannot be stored as JSON: ${(e as Error).message.split("\n")[0]}`, { cause: e });
  }
  if (json === undefined) throw new StateAccessError(`state "${address.state}" for key ${address.keyId}: the value cannot be stored as JSON`);
  const lost = json.includes("{}") ? lostInJson(value) : undefined;
  if (lost !== undefined) {
    throw new StateAccessError(`state "${address.state}" for key ${address.keyId}: the value cannot be stored as JSON: ${lost}; use plain objects and arrays`);
  }
  // UTF-16 length is a lower bound of the UTF-8 size, 3x an upper bound: count exactly only near the limit.
  if (json.length * 3 > maxBytes) {
    const bytes = Buffer.byteLength(json, "utf8");
    if (bytes > maxBytes) throw tooLarge(address, bytes, maxBytes);
  }
  return json;
}

/**
 * The JSON of a value to store, checked against `maxBytes`; undefined for a finite number or a boolean
 * (no JSON needed until it is stored, and its size is bounded) and for undefined (a removal).
 */
export function valueJson(value: unknown, address: StateAddress, maxBytes: number): string | undefined {
  const plain = (typeof value === "number" && Number.isFinite(value)) || typeof value === "boolean";
  return value === undefined || plain ? undefined : serialize(value, address, maxBytes);
}

export function tooLarge(address: StateAddress, bytes: number, maxBytes: number): StateLimitError {
  return new StateLimitError(
    `state "${address.state}" for key ${address.keyId}${address.userKeyId === undefined ? "" : ` (map key ${address.userKeyId})`}: the value is ${bytes} bytes, more than maxValueBytes ${maxBytes}; it was not stored`,
  );
}

export function decodeEntry(key: string, kind: EntryKind, keyGroup: number, data: Uint8Array | undefined): CacheEntry {
  if (kind === EntryKind.Index) {
    const keys = new OrderedKeys();
    let bytes = 0;
    if (data !== undefined) {
      for (const k of parseJson(key, data) as string[]) { keys.add(k); bytes += k.length + INDEX_KEY_OVERHEAD_BYTES; }
    }
    return new CacheEntry(key, kind, keyGroup, keys, bytes, data !== undefined);
  }
  return new CacheEntry(key, kind, keyGroup, data === undefined ? undefined : parseJson(key, data), data?.length ?? 0, data !== undefined);
}

function parseJson(key: string, data: Uint8Array): unknown {
  try {
    return fromStateJson(decoder.decode(data));
  } catch (e) {
    throw new StateAccessError(`KV key ${key} does not hold JSON (${data.length} bytes): ${(e as Error).message}`, { cause: e });
  }
}
