// Step 1 of a batch (see backend.ts): the entries its requests need, pinned in the cache; the missing
// ones fetched together, pipelined, a later reader of a key joining the read already in flight.

import { decodeEntry } from "./entry-json.ts";
import { EntryKind, type CacheEntry, type StateCache } from "./cache.ts";
import type { FreshBucketKeys } from "./fresh-keys.ts";
import { ChunkedValue, type RemoteValues } from "./remote-values.ts";

/** A fetch of one key in flight; `superseded` when the key was written meanwhile (its result may be stale). */
interface Fetch {
  promise: Promise<CacheEntry>;
  superseded: boolean;
}

/** An entry a batch needs in the cache: what to fetch, and once pinned, the entry itself (or why not). */
export class Need {
  entry: CacheEntry | undefined;
  error: unknown;
  constructor(readonly key: string, readonly kind: EntryKind, readonly keyGroup: number) {}
}

const toUndefined = (): undefined => undefined;
const toSelf = (e: unknown): unknown => e;

export interface LoadCounters { hits: number; misses: number; coalescedReads: number; knownAbsent: number }

export class EntryLoader {
  private readonly fetches = new Map<string, Fetch>();

  constructor(
    private readonly cache: StateCache,
    private readonly remote: RemoteValues,
    private readonly fresh: FreshBucketKeys | undefined,
    private readonly counters: LoadCounters,
  ) {}

  /** Reads in flight: none means every entry the backend knows of is in the cache. */
  get reading(): number { return this.fetches.size; }

  isReading(key: string): boolean { return this.fetches.has(key); }

  /** `key` is being written: a read of it in flight may return an older value. */
  supersede(key: string): void {
    const fetch = this.fetches.get(key);
    if (fetch !== undefined) fetch.superseded = true;
  }

  /** Pins the needed entries already cached (or known absent from KV); returns the needs that are not. */
  pinCached(needs: Iterable<Need>): Need[] {
    const missing: Need[] = [];
    for (const n of needs) {
      let e = this.cache.touch(n.key, n.keyGroup);
      if (e !== undefined) this.counters.hits++;
      else e = this.knownAbsent(n.key, n.kind, n.keyGroup);
      if (e !== undefined) { e.pins++; n.entry = e; } else missing.push(n);
    }
    return missing;
  }

  /** KV cannot hold `key` (see FreshBucketKeys) and no read of it is under way. */
  absentFromKv(key: string): boolean {
    return this.fresh !== undefined && !this.fetches.has(key) && this.fresh.isAbsent(key);
  }

  /** A cached absent entry for `key` when KV cannot hold it (see FreshBucketKeys); undefined when it must be read. */
  knownAbsent(key: string, kind: EntryKind, keyGroup: number): CacheEntry | undefined {
    if (!this.absentFromKv(key)) return undefined;
    const e = decodeEntry(key, kind, keyGroup, undefined);
    this.cache.insert(e);
    this.counters.knownAbsent++;
    return e;
  }

  /** Fetches `missing` (pipelined) until each is in the cache and pinned, or failed (`error`). */
  async fetchAndPin(missing: Need[]): Promise<void> {
    while (missing.length > 0) {
      const results = await Promise.all(missing.map((n) => this.fetch(n.key, n.kind, n.keyGroup).then(toUndefined, toSelf)));
      const again: Need[] = [];
      for (let i = 0; i < missing.length; i++) {
        const n = missing[i]!;
        if (results[i] !== undefined) { n.error = results[i]; continue; }
        const e = this.cache.touch(n.key, n.keyGroup);
        // Evicted by another batch between its arrival and now: fetch again (rare; needs a cache smaller than the batches in flight).
        if (e === undefined) again.push(n); else { e.pins++; n.entry = e; }
      }
      missing = again;
    }
  }

  /** One remote read per key at a time: later readers of the same key join the read in flight. */
  private fetch(key: string, kind: EntryKind, keyGroup: number): Promise<CacheEntry> {
    const inFlight = this.fetches.get(key);
    if (inFlight !== undefined) {
      this.counters.coalescedReads++;
      return inFlight.promise;
    }
    this.counters.misses++;
    const f: Fetch = { promise: undefined as unknown as Promise<CacheEntry>, superseded: false };
    f.promise = this.readInto(key, kind, keyGroup, f);
    this.fetches.set(key, f);
    return f.promise;
  }

  private readInto(key: string, kind: EntryKind, keyGroup: number, f: Fetch): Promise<CacheEntry> {
    return this.remote.read(key).then((stored) => {
      const cached = this.cache.peek(key, keyGroup);
      if (cached === undefined && f.superseded) {
        // Written, flushed and evicted while we read: what we read may be older. Read again.
        f.superseded = false;
        return this.readInto(key, kind, keyGroup, f);
      }
      if (this.fetches.get(key) === f) this.fetches.delete(key);
      if (cached !== undefined) return cached; // written (or fetched) meanwhile: the cache is newer
      const entry = decodeEntry(key, kind, keyGroup, stored.data);
      if (stored instanceof ChunkedValue) entry.chunks = stored.chunks;
      entry.kvSeq = stored.seq; // what a conditional write of the key expects (remote-values.ts)
      this.cache.insert(entry);
      return entry;
    }, (e: unknown) => {
      if (this.fetches.get(key) === f) this.fetches.delete(key);
      throw e;
    });
  }

  /** The keys of `keys` not in the cache, as needs to fetch. */
  uncached(keys: readonly string[], keyGroup: number): Need[] {
    const missing: Need[] = [];
    for (const key of keys) if (this.cache.peek(key, keyGroup) === undefined) missing.push(new Need(key, EntryKind.Value, keyGroup));
    return missing;
  }
}
