// The local cache of the KV backend: every entry a request touched, bounded in entries and bytes.
// Dirty entries (written, not yet flushed) live here too and are never evicted: the cache is also the
// write-back buffer. Eviction is CLOCK (second chance) over the key groups' Maps, each in insertion order:
// a hit only sets a bit, no reordering on the hot path, and an entry touched since the hand last passed
// survives one sweep.

import type { OrderedKeys } from "../ordered-keys.ts";
import type { ChunkRef } from "./remote-values.ts";

export const EntryKind = { Value: 0, Index: 1 } as const;
export type EntryKind = (typeof EntryKind)[keyof typeof EntryKind];

/** Rough per-entry cost of the entry object, its Map slot and key string header. */
export const ENTRY_OVERHEAD_BYTES = 160;
/** Rough cost of one key in a map's key index. */
export const INDEX_KEY_OVERHEAD_BYTES = 48;

export class CacheEntry {
  // Fields in the order a warm read and write touch them: the object spans three cache lines, and with
  // the state larger than the CPU's caches each line a request touches costs a memory load.
  /** In the cache (inserted, not evicted or dropped since): a reference kept elsewhere may be used as is. */
  cached = false;
  readonly kind: EntryKind;
  /** CLOCK reference bit. */
  ref = true;
  dirty = false;
  /** In the cache's list of dirty entries (it may stay listed a while after turning clean). */
  listed = false;
  /** Value: the encoded value, undefined when absent. Index: the map's keys. */
  value: unknown;
  /** Serialized value when known (set by Put, dropped by Append and after a flush). */
  json: string | undefined;
  /** Accounted bytes: overhead, key and (estimated) value. */
  bytes: number;
  /** The part of `bytes` that is not the value (overhead and key), kept to spare a load of the key string. */
  readonly baseBytes: number;
  /** Bumped by every write: a flush marks the entry clean only if no write came after its snapshot. */
  version = 0;
  readonly key: string;
  readonly keyGroup: number;
  /** Batches that rely on this entry staying in the cache until they apply. */
  pins = 0;
  /** Chunks of the value as stored in KV, if it is chunked (so a later write can drop them). */
  chunks: ChunkRef | undefined;
  /**
   * Whether KV holds this key: false when read absent (or known never written) and not written to KV
   * since, true once read or written with a value, undefined when unknown (a blind write). Removing an
   * entry KV does not hold needs no erase request (a window's accumulator created and cleared between
   * two materializations is most of them).
   */
  kvHolds: boolean | undefined;
  /** Stream sequence of the message this backend last stored under the key (erased by that sequence). */
  kvSeq: number | undefined;

  constructor(key: string, kind: EntryKind, keyGroup: number, value: unknown, valueBytes: number, kvHolds?: boolean) {
    this.kind = kind;
    this.value = value;
    this.baseBytes = ENTRY_OVERHEAD_BYTES + key.length;
    this.bytes = this.baseBytes + valueBytes;
    this.key = key;
    this.keyGroup = keyGroup;
    this.kvHolds = kvHolds;
  }

  get index(): OrderedKeys { return this.value as OrderedKeys; }
}

/**
 * The dirty entries, as a list with a count rather than a Set: an entry turning dirty is appended (unless
 * still listed), one turning clean only counts down and leaves the list at the next compaction. A Set's
 * add and delete on 150k entries cost ~1.3 µs each in a backlog drain (bench/prof-backlog.ts profile);
 * the list's push and flag, a fraction of it.
 */
export class DirtyEntries {
  private list: CacheEntry[] = [];
  /** Entries dirty now. */
  size = 0;

  /** `e` turned dirty. */
  add(e: CacheEntry): void {
    this.size++;
    if (e.listed) return;
    e.listed = true;
    this.list.push(e);
  }

  /** `e` turned clean (one `clear` dropped is no longer counted). */
  delete(e: CacheEntry): void {
    if (!e.listed) return;
    this.size--;
    // Clean entries listed would keep evicted ones alive: dropped once they are most of the list.
    if (this.list.length > 1024 + 4 * this.size) this.compact();
  }

  /** The entries dirty now (a new array, the caller's). */
  entries(): CacheEntry[] {
    this.compact();
    return this.list.slice();
  }

  /**
   * The oldest entries dirty now, as many as leaves at most `leaveEntries` dirty weighing at most
   * `leaveBytes` of `dirtyBytes` (a new array, the caller's). Oldest: first listed; an entry written and
   * dirty again before the list drops it (compaction) keeps its place, so a key written all the time is
   * written with each wave, as with a wave of every entry.
   */
  oldest(leaveEntries: number, leaveBytes: number, dirtyBytes: number): CacheEntry[] {
    this.compact();
    let n = 0;
    let bytes = dirtyBytes;
    while (n < this.list.length && (this.size - n > leaveEntries || bytes > leaveBytes)) bytes -= this.list[n++]!.bytes;
    return this.list.slice(0, n);
  }

  clear(): void {
    for (const e of this.list) e.listed = false;
    this.list = [];
    this.size = 0;
  }

  private compact(): void {
    const now: CacheEntry[] = [];
    for (const e of this.list) {
      if (e.dirty) now.push(e);
      else e.listed = false;
    }
    this.list = now;
  }
}

/**
 * The cached entries, a Map per key group: a backlog drain runs its keys key group by key group, and a
 * key new to the cache (most of them when the state is larger than the cache) was looked up in one Map of
 * up to `cacheMaxEntries` keys, a chain of memory loads that missed the CPU's caches (~1 µs per lookup,
 * 5.5% of the drain in bench/prof-backlog.ts with 500k keys); its key group's Map is small and warm.
 */
export class StateCache {
  private readonly groups: Array<Map<string, CacheEntry> | undefined> = [];
  private count = 0;
  readonly dirty = new DirtyEntries();
  bytes = 0;
  dirtyBytes = 0;
  evictions = 0;
  /**
   * The CLOCK hand: a live iterator of one key group's entries (`handGroup`), kept only while a sweep is
   * under way. V8 keeps every hash table a Map outgrew (or shrank from) reachable from a live iterator
   * until that iterator moves, and those tables still hold the entries they had: a hand kept while the
   * cache stayed within bounds pinned every entry ever dropped (the 2,000 records/s soak grew ~150k dead
   * entries in 3 minutes).
   */
  private hand: IterableIterator<CacheEntry> | undefined;
  private handGroup = 0;

  /** `firstKeyGroup`: the backend's first key group (the Maps are indexed from it). */
  constructor(readonly maxEntries: number, readonly maxBytes: number, private readonly onEvict?: (key: string) => void, private readonly firstKeyGroup = 0) {}

  get size(): number { return this.count; }

  /** The entry, without counting as a use. */
  peek(key: string, keyGroup: number): CacheEntry | undefined {
    return this.groups[keyGroup - this.firstKeyGroup]?.get(key);
  }

  /** The entry, counted as a use (CLOCK bit). */
  touch(key: string, keyGroup: number): CacheEntry | undefined {
    const e = this.groups[keyGroup - this.firstKeyGroup]?.get(key);
    if (e !== undefined) e.ref = true;
    return e;
  }

  insert(e: CacheEntry): void {
    e.ref = true;
    e.cached = true;
    const group = this.group(e.keyGroup);
    const size = group.size;
    group.set(e.key, e);
    this.count += group.size - size;
    this.bytes += e.bytes;
  }

  /** Sets the entry's accounted bytes (value changed). */
  resize(e: CacheEntry, bytes: number): void {
    const delta = bytes - e.bytes;
    e.bytes = bytes;
    this.bytes += delta;
    if (e.dirty) this.dirtyBytes += delta;
  }

  markDirty(e: CacheEntry): void {
    e.version++;
    if (!e.dirty) {
      e.dirty = true;
      this.dirty.add(e);
      this.dirtyBytes += e.bytes;
    }
  }

  /** After a flush wrote `version` of the entry: clean, unless written again since. */
  markClean(e: CacheEntry, version: number): void {
    if (!e.dirty || e.version !== version) return;
    e.dirty = false;
    e.json = undefined;
    this.dirty.delete(e);
    this.dirtyBytes -= e.bytes;
  }

  get overLimit(): boolean {
    return this.count > this.maxEntries || this.bytes > this.maxBytes;
  }

  /**
   * Evicts clean, unpinned entries until within bounds. Returns false when it could not get there because
   * the rest is dirty or pinned (the caller then flushes). The hand goes round the key groups' Maps, each
   * in insertion order, and is kept across the calls of one period over the bounds: it resumes where it
   * stopped and wraps around, so no entry is moved on the hot path; back within bounds it is let go (see
   * `hand`).
   */
  evict(): boolean {
    if (!this.overLimit) {
      this.hand = undefined;
      return true;
    }
    if (this.count - this.dirty.size === 0) return false;
    // Two laps at most: the first may only clear reference bits (a key group's end is a step too).
    let steps = 2 * (this.count + this.groups.length) + 2;
    while (this.overLimit && steps-- > 0) {
      const group = this.groups[this.handGroup];
      this.hand ??= group?.values();
      const next = this.hand?.next();
      if (next === undefined || next.done) {
        this.hand = undefined;
        this.handGroup = this.handGroup + 1 < this.groups.length ? this.handGroup + 1 : 0;
        continue;
      }
      const e = next.value;
      if (e.dirty || e.pins > 0) continue;
      if (e.ref) { e.ref = false; continue; }
      group!.delete(e.key);
      this.count--;
      e.cached = false;
      this.bytes -= e.bytes;
      this.evictions++;
      this.onEvict?.(e.key);
    }
    if (this.overLimit) return false;
    this.hand = undefined;
    return true;
  }

  /**
   * Drops `e` once KV has acknowledged its removal (an absent value, an empty map index), unless it was
   * written again since (dirty), a batch relies on it (pinned) or it was replaced already. Kept, such
   * entries would pile up until the bounds force eviction: state under ever-new keys (a window's
   * accumulator, cleared when the window fires) would fill the cache to its bound. Not reported to
   * onEvict: KV holds nothing under the key, so a later miss that reads it as absent without asking KV is
   * right, and one that asks KV finds nothing.
   */
  dropErased(e: CacheEntry): boolean {
    const group = this.groups[e.keyGroup - this.firstKeyGroup];
    if (e.dirty || e.pins > 0 || group?.get(e.key) !== e) return false;
    if (e.kind === EntryKind.Value ? e.value !== undefined : e.index.size > 0) return false;
    group.delete(e.key);
    this.count--;
    e.cached = false;
    this.bytes -= e.bytes;
    return true;
  }

  clear(): void {
    for (const group of this.groups) {
      if (group === undefined) continue;
      for (const e of group.values()) e.cached = false;
      group.clear();
    }
    this.count = 0;
    this.hand = undefined;
    this.dirty.clear();
    this.bytes = 0;
    this.dirtyBytes = 0;
  }

  /** The Map of `keyGroup`, made on its first entry. */
  private group(keyGroup: number): Map<string, CacheEntry> {
    const i = keyGroup - this.firstKeyGroup;
    const group = this.groups[i];
    if (group !== undefined) return group;
    if (!Number.isInteger(i) || i < 0 || i >= 1 << 16) throw new RangeError(`state cache: key group ${keyGroup} is not one of this backend's (the first is ${this.firstKeyGroup})`);
    // Filled up to `i` (no holes: the array stays a packed one, and the hand walks it by index).
    while (this.groups.length <= i) this.groups.push(undefined);
    return (this.groups[i] = new Map());
  }
}
