// Step 2 of a batch (see backend.ts): requests applied to entries pinned in the cache. Writes only touch
// the cache; each marks its entry dirty (and tells the checkpoints) for write-back.

import type { ScanPage, StateAddress } from "../../contracts.ts";
import type { StateBackendConfig } from "../../config.ts";
import { StateAccessError } from "../../errors.ts";
import { OrderedKeys } from "../ordered-keys.ts";
import { scanLimit } from "../request-checks.ts";
import { CacheEntry, EntryKind, INDEX_KEY_OVERHEAD_BYTES, type StateCache } from "./cache.ts";
import { serialize, tooLarge, valueJson } from "./entry-json.ts";
import { mapEntryKey } from "./keys.ts";
import type { EntryLoader } from "./loader.ts";

const DEFAULT_SCAN_LIMIT = 256;

/** A page of a map scan: its user keys and their KV keys. */
export interface ScanSlice {
  readonly keys: string[];
  readonly more: boolean;
  readonly entryKeys: string[];
  /** The map's key group (its entries' too). */
  readonly keyGroup: number;
}

export function kindConflict(address: StateAddress): StateAccessError {
  return new StateAccessError(`state "${address.state}" of operator "${address.operator}" is used both as a map and as another kind of state`);
}

/** The most JSON a finite number or a boolean takes ("-1.2345678901234567e-308"). */
const PLAIN_VALUE_BYTES = 24;


export class CachedEntries {
  constructor(
    private readonly cache: StateCache,
    private readonly loader: EntryLoader,
    private readonly config: StateBackendConfig,
    private readonly counters: { hits: number },
    /** A written entry: with checkpoints, the change goes in the next one. */
    private readonly changed: (e: CacheEntry) => void,
  ) {}

  /** The entry to write: the cached one, or a new one (a plain write replaces the value whole, no read needed). */
  private writable(key: string, kind: EntryKind, keyGroup: number, address: StateAddress): CacheEntry {
    this.loader.supersede(key);
    let e = this.cache.touch(key, keyGroup);
    if (e === undefined) {
      // A key KV cannot hold (read as absent without a cache entry, or never read) needs no erase request
      // if its value is removed before a flush wrote it.
      e = new CacheEntry(key, kind, keyGroup, kind === EntryKind.Index ? new OrderedKeys() : undefined, 0, this.loader.absentFromKv(key) ? false : undefined);
      this.cache.insert(e);
    } else if (e.kind !== kind) {
      throw kindConflict(address);
    }
    return e;
  }

  putValue(key: string, address: StateAddress, value: unknown): CacheEntry {
    const json = valueJson(value, address, this.config.maxValueBytes); // a value too large changes nothing
    const e = this.writable(key, EntryKind.Value, address.keyGroup, address);
    this.store(e, value, json);
    return e;
  }

  /** putValue on its cached entry `e` (no read of the key in flight: see EntryLoader.supersede). */
  setValue(e: CacheEntry, address: StateAddress, value: unknown): void {
    e.ref = true;
    this.store(e, value, valueJson(value, address, this.config.maxValueBytes));
  }

  private store(e: CacheEntry, value: unknown, json: string | undefined): void {
    e.value = value;
    e.json = json;
    this.cache.resize(e, e.baseBytes + (json === undefined && value !== undefined ? PLAIN_VALUE_BYTES : (json?.length ?? 0)));
    this.written(e);
  }

  /** A map entry at KV key `entryKey`, listed in (or, for `undefined`, removed from) the map's `index`. */
  putMapEntry(index: CacheEntry, entryKey: string, address: StateAddress, value: unknown): void {
    const userKeyId = address.userKeyId!;
    this.putValue(entryKey, address, value);
    const keys = index.index;
    if (value === undefined ? keys.delete(userKeyId) : keys.add(userKeyId)) {
      const delta = userKeyId.length + INDEX_KEY_OVERHEAD_BYTES;
      this.cache.resize(index, index.bytes + (value === undefined ? -delta : delta));
      this.written(index);
    }
  }

  append(e: CacheEntry, address: StateAddress, values: readonly unknown[]): void {
    const added = serialize(values, address, this.config.maxValueBytes);
    const current = e.value;
    if (current !== undefined && !Array.isArray(current)) {
      throw new StateAccessError(`state "${address.state}" for key ${address.keyId}: cannot append to a stored value that is not a list`);
    }
    // Size of the JSON of the appended list, known without serializing it: "[a,b]" + "[c]" = "[a,b,c]".
    const valueBytes = current === undefined || current.length === 0 ? added.length : e.bytes - e.baseBytes + added.length - 1;
    if (valueBytes > this.config.maxValueBytes) throw tooLarge(address, valueBytes, this.config.maxValueBytes);
    if (current === undefined) e.value = values.slice();
    else for (let i = 0; i < values.length; i++) current.push(values[i]); // no spread: a huge addAll would overflow the call stack
    e.json = undefined;
    this.cache.resize(e, e.baseBytes + valueBytes);
    this.written(e);
  }

  /** The keys of the page a Scan request asks for, from the map's index (pinned in the cache). */
  scanSlice(index: CacheEntry, base: string, address: StateAddress, cursor: string | undefined, limit: number | undefined): ScanSlice {
    const page = index.index.page(cursor, scanLimit(limit, DEFAULT_SCAN_LIMIT));
    return { ...page, entryKeys: page.keys.map((k) => mapEntryKey(base, k, address)), keyGroup: address.keyGroup };
  }

  /** The page, once every entry of it is in the cache. Entries whose value is absent are left out. */
  buildPage(page: ScanSlice): ScanPage {
    const entries: Array<readonly [string, unknown]> = [];
    for (let i = 0; i < page.keys.length; i++) {
      const e = this.cache.touch(page.entryKeys[i]!, page.keyGroup);
      if (e === undefined) throw new StateAccessError(`internal: map entry ${page.entryKeys[i]} is not in the cache`);
      this.counters.hits++;
      if (e.value !== undefined) entries.push([page.keys[i]!, e.value]);
    }
    return page.more ? { entries, cursor: page.keys[page.keys.length - 1]! } : { entries };
  }

  clearMap(index: CacheEntry, base: string, address: StateAddress): void {
    if (index.index.size === 0) return;
    for (const userKeyId of index.index) this.putValue(mapEntryKey(base, userKeyId, address), address, undefined);
    index.index.clear();
    this.cache.resize(index, index.baseBytes);
    this.written(index);
  }

  private written(e: CacheEntry): void {
    this.cache.markDirty(e);
    this.changed(e);
  }
}
