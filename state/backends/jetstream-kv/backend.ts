// The JetStream KV backend: keyed state in a KV bucket (one key per entry, docs/state.md), with a bounded
// local cache in front and write-back behind.
//
// A batch runs in three steps (FLIP-426): (1) find the entries its requests need and fetch the missing ones
// together, pipelined, joining fetches already in flight for the same keys; (2) once every needed entry is
// in the cache (pinned), apply the requests in order, synchronously, so requests on one address see each
// other in order; (3) evict, and flush when the dirty budget is exceeded. Writes only touch the cache: a
// flush (budget, timer, flush(), close()) writes the dirty entries to KV in one pipelined wave.

import type {
  KeyedStateBackend,
  ScanPage,
  StateAddress,
  StateBackendMetrics,
  PendingStateRequest,
  StateRequest,
  StateSnapshot,
} from "../../contracts.ts";
import { NOT_APPLIED, StateBackendKind, StateRequestType as T } from "../../contracts.ts";
import type { StateBackendConfig } from "../../config.ts";
import { StateAccessError } from "../../errors.ts";
import type { KeyGroupRange } from "../../key-groups.ts";
import { OrderedKeys } from "../ordered-keys.ts";
import { checkKeyGroup, checkShape, closedError, scanLimit } from "../request-checks.ts";
import { snapshotValue } from "../snapshot.ts";
import { CacheEntry, EntryKind, INDEX_KEY_OVERHEAD_BYTES, StateCache } from "./cache.ts";
import { baseKey, mapEntryKey } from "./keys.ts";
import type { KvPipe } from "./pipe.ts";
import { ChunkedValue, RemoteValues } from "./remote-values.ts";
import type { ChangelogStream } from "../changelog/stream.ts";
import { KvCheckpoints, runPool } from "./checkpoints.ts";
import { baseBytes, decodeEntry, entryJson, serialize, tooLarge } from "./entry-json.ts";
import { FreshBucketKeys } from "./fresh-keys.ts";

const DEFAULT_SCAN_LIMIT = 256;
const encoder = new TextEncoder();

/** A fetch of one key in flight; `superseded` when the key was written meanwhile (its result may be stale). */
interface Fetch {
  promise: Promise<CacheEntry>;
  superseded: boolean;
}

/** An entry a batch needs in the cache: what to fetch, and once pinned, the entry itself (or why not). */
class Need {
  entry: CacheEntry | undefined;
  error: unknown;
  constructor(readonly key: string, readonly kind: EntryKind, readonly keyGroup: number) {}
}

const toUndefined = (): undefined => undefined;
const toSelf = (e: unknown): unknown => e;

/** One request of a batch, with its keys resolved. */
interface Prepared {
  readonly request: StateRequest;
  /** Where its completion is reported. */
  readonly pending: PendingStateRequest;
  /** KV key of the plain entry or of the map's index. */
  readonly base: string;
  /** KV key of the map entry, for map entry requests. */
  readonly entry: string | undefined;
  /** The key this request needs in the cache before it can apply, if any. */
  readonly needKey: string | undefined;
  need: Need | undefined;
  /** Set once applied: what the request resolves with (after any backpressure wait). */
  applied: boolean;
  result: unknown;
}

/** A page of a map scan: its user keys and their KV keys. */
interface ScanSlice {
  readonly keys: string[];
  readonly more: boolean;
  readonly entryKeys: string[];
}

export interface JetStreamKvBackendOptions {
  readonly pipe: KvPipe;
  readonly keyGroupRange: KeyGroupRange;
  readonly config: StateBackendConfig;
  /** The server's max payload (nc.info.max_payload): values above it are chunked. */
  readonly maxPayload: number;
  /** With durability "checkpoint": the changelog of this backend's vertex, and how to reach another vertex's. */
  readonly changelog?: { readonly stream: ChangelogStream; readonly owner: string; readonly forOwner: (owner: string) => ChangelogStream };
  /** Called when the dirty budget is exceeded while checkpoints decide what reaches KV: take a checkpoint soon. */
  readonly onDirtyBudgetExceeded?: () => void;
  /** The bucket held no entry when this backend opened: see FreshBucketKeys. */
  readonly bucketWasEmpty?: boolean;
}

export class JetStreamKvStateBackend implements KeyedStateBackend {
  readonly kind = StateBackendKind.JetStreamKv;
  readonly keyGroupRange: KeyGroupRange;
  private readonly cache: StateCache;
  private readonly pipe: KvPipe;
  private readonly remote: RemoteValues;
  private readonly config: StateBackendConfig;
  private readonly fetches = new Map<string, Fetch>();
  private readonly fresh: FreshBucketKeys | undefined;

  /** Present with durability "checkpoint": then only completed checkpoints reach KV. */
  private readonly checkpoints: KvCheckpoints | undefined;
  private flushing: Promise<void> | undefined;
  private flushError: unknown;
  private readonly timer: ReturnType<typeof setInterval> | undefined;
  private closed = false;
  /** Settles when the last batch submitted has applied its requests. */
  private applied: Promise<void> = Promise.resolve();
  private batchesWaiting = 0;
  private counters = { hits: 0, misses: 0, coalescedReads: 0, knownAbsent: 0, batches: 0, requests: 0, flushes: 0 };

  constructor(options: JetStreamKvBackendOptions) {
    this.keyGroupRange = options.keyGroupRange;
    this.config = options.config;
    this.pipe = options.pipe;
    this.remote = new RemoteValues(options.pipe, options.maxPayload);
    const fresh = options.bucketWasEmpty ? new FreshBucketKeys() : undefined;
    this.fresh = fresh;
    this.cache = new StateCache(options.config.cacheMaxEntries, options.config.cacheMaxBytes, fresh && ((key) => fresh.onEvict(key)));
    if (options.config.durability === "checkpoint") {
      if (!options.changelog) throw new StateAccessError("durability \"checkpoint\" needs a changelog stream");
      this.checkpoints = new KvCheckpoints(
        {
          cache: this.cache, remote: this.remote, pipe: this.pipe, keyGroupRange: this.keyGroupRange, writeConcurrency: options.config.putConcurrency,
          // Due when the interval passed, or when unmaterialized entries hold half the dirty budget (they
          // cannot be evicted until written).
          materializeDue: (entries, msSinceLast) => msSinceLast >= this.config.materializeIntervalMs
            || entries * 2 >= this.config.dirtyMaxEntries || this.cache.dirtyBytes * 2 >= this.config.dirtyMaxBytes,
        },
        options.changelog.stream, options.changelog.owner, options.changelog.forOwner, options.onDirtyBudgetExceeded,
      );
    } else if (options.config.flushIntervalMs > 0) {
      this.timer = setInterval(() => { if (this.cache.dirty.size > 0) this.flushInBackground(); }, options.config.flushIntervalMs);
      this.timer.unref?.();
    }
  }

  // ------------------------------------------------------------------ batches

  async executeBatch(requests: readonly PendingStateRequest[]): Promise<void> {
    this.counters.batches++;
    this.counters.requests += requests.length;
    if (this.closed) {
      for (const r of requests) r.reject(closedError("jetstream-kv"));
      return;
    }
    // Batches apply in the order they were submitted (their fetches overlap): a request never overtakes
    // an earlier one on the same address, even when the earlier batch waits for KV.
    const previous = this.applied;
    let applied!: () => void;
    this.applied = new Promise<void>((resolve) => { applied = resolve; });
    this.batchesWaiting++;
    const prepared: Prepared[] = [];
    try {
      // 1. resolve keys; find what must be in the cache
      const needs = new Map<string, Need>();
      for (const pending of requests) {
        const request = pending.request;
        try {
          const p = this.prepare(pending);
          prepared.push(p);
          if (p.needKey !== undefined) {
            let need = needs.get(p.needKey);
            if (need === undefined) needs.set(p.needKey, (need = new Need(p.needKey, needKind(request), request.address.keyGroup)));
            p.need = need;
          }
        } catch (e) {
          pending.reject(e);
        }
      }
      // 2. fetch the missing entries, pipelined; pin them so that no other batch evicts them before we apply
      let scanNeeds: Need[] | undefined;
      const missing = this.pinCached(needs.values());
      if (missing.length > 0) await this.fetchAndPin(missing);
      // Only this batch in progress: every earlier one has applied, no need to wait (or yield).
      if (this.batchesWaiting > 1) await previous;
      try {
        // 3. apply in order, synchronously: requests on one address see each other in order
        for (const p of prepared) {
          if (p.need !== undefined && p.need.entry === undefined) { p.pending.reject(p.need.error); continue; }
          try {
            let page: ScanSlice | undefined;
            if (p.request.kind === T.Scan) {
              // A page's entries not in the cache are fetched before the scan applies (and before anything
              // after it): nothing else applies meanwhile, so the page shows exactly the state at its turn.
              page = this.scanSlice(p);
              const uncached = this.uncached(page.entryKeys, p.request.address.keyGroup);
              if (uncached.length > 0) {
                scanNeeds = scanNeeds === undefined ? uncached : scanNeeds.concat(uncached);
                await this.fetchAndPin(uncached);
                const failed = uncached.find((n) => n.entry === undefined);
                if (failed !== undefined) throw failed.error;
              }
            }
            p.result = page !== undefined ? this.buildPage(page) : this.apply(p);
            p.applied = true;
          } catch (e) {
            p.pending.reject(e);
          }
        }
      } finally {
        for (const n of needs.values()) if (n.entry !== undefined) n.entry.pins--;
        if (scanNeeds !== undefined) for (const n of scanNeeds) if (n.entry !== undefined) n.entry.pins--;
      }
    } finally {
      this.batchesWaiting--;
      applied();
    }
    // Over the dirty budget: the requests complete once the flush has made room. Their records stay in
    // flight meanwhile, so the controller's in-flight limit stops the input (backpressure); resolved
    // first, they would let records finish and new writes pile up without bound.
    const pressure = this.afterWrites();
    if (pressure) await pressure;
    for (const p of prepared) if (p.applied) p.pending.resolve(p.result);
  }

  /**
   * Answer now if you can (the caller guarantees no earlier request on the address is pending): a Get of a
   * cached or known-absent value and a Put of a plain value apply at once, without a request object or a
   * batch; anything else (map entries, lists, a miss) goes in a batch.
   */
  tryNow(request: StateRequest): unknown {
    const address = request.address;
    if (this.closed || address.userKeyId !== undefined) return NOT_APPLIED;
    const kind = request.kind;
    if (kind === T.Put) {
      // A full cache makes room by sweeping it: once per batch, not once per request.
      if (this.cache.overLimit) return NOT_APPLIED;
      checkKeyGroup(this.keyGroupRange, address);
      this.counters.requests++;
      this.putValue(this.baseKeyOf(address), address, request.value);
      return this.afterWrites();
    }
    if (kind !== T.Get) return NOT_APPLIED;
    checkKeyGroup(this.keyGroupRange, address);
    const key = this.baseKeyOf(address);
    let e = this.cache.touch(key);
    if (e !== undefined) this.counters.hits++;
    else if (this.cache.overLimit || (e = this.knownAbsent(key, EntryKind.Value, address.keyGroup)) === undefined) return NOT_APPLIED;
    if (e.kind !== EntryKind.Value) throw kindConflict(address);
    this.counters.requests++;
    return snapshotValue(e.value);
  }

  knownEmpty(address: StateAddress): boolean {
    if (this.closed || address.userKeyId !== undefined) return false;
    // A new job's empty cache over an empty bucket (what a backlog bootstraps from): no key to build.
    if (this.cache.size === 0 && this.fetches.size === 0 && this.fresh?.empty === true) return true;
    const key = this.baseKeyOf(address);
    const e = this.cache.peek(key);
    if (e !== undefined) return e.kind === EntryKind.Value && e.value === undefined;
    return this.fresh !== undefined && !this.fetches.has(key) && this.fresh.isAbsent(key);
  }

  /** The address's KV key, memoized on the address (see StateAddress.keyMemo). */
  private baseKeyOf(address: StateAddress): string {
    if (address.keyOwner === this && address.keyMemo !== undefined) return address.keyMemo;
    const key = baseKey(address);
    address.keyOwner = this;
    address.keyMemo = key;
    return key;
  }

  private prepare(pending: PendingStateRequest): Prepared {
    const request = pending.request;
    const { kind: type, address } = request;
    checkKeyGroup(this.keyGroupRange, address);
    checkShape(request);
    const base = this.baseKeyOf(address);
    const entry = address.userKeyId === undefined ? undefined : mapEntryKey(base, address.userKeyId, address);
    let needKey: string | undefined;
    switch (type) {
      case T.Get: needKey = entry ?? base; break;
      case T.Append: needKey = base; break;
      case T.Put: needKey = entry === undefined ? undefined : base; break; // map entries update the map's index
      case T.Scan:
      case T.ClearMap: needKey = base; break;
    }
    return { request, pending, base, entry, needKey, need: undefined, applied: false, result: undefined };
  }

  /** Pins the needed entries already cached (or known absent from KV); returns the needs that are not. */
  private pinCached(needs: Iterable<Need>): Need[] {
    const missing: Need[] = [];
    for (const n of needs) {
      let e = this.cache.touch(n.key);
      if (e !== undefined) this.counters.hits++;
      else e = this.knownAbsent(n.key, n.kind, n.keyGroup);
      if (e !== undefined) { e.pins++; n.entry = e; } else missing.push(n);
    }
    return missing;
  }

  /** A cached absent entry for `key` when KV cannot hold it (see FreshBucketKeys); undefined when it must be read. */
  private knownAbsent(key: string, kind: EntryKind, keyGroup: number): CacheEntry | undefined {
    if (this.fresh === undefined || this.fetches.has(key) || !this.fresh.isAbsent(key)) return undefined;
    const e = decodeEntry(key, kind, keyGroup, undefined);
    this.cache.insert(e);
    this.counters.knownAbsent++;
    return e;
  }

  /** Fetches `missing` (pipelined) until each is in the cache and pinned, or failed (`error`). */
  private async fetchAndPin(missing: Need[]): Promise<void> {
    while (missing.length > 0) {
      const results = await Promise.all(missing.map((n) => this.fetch(n.key, n.kind, n.keyGroup).then(toUndefined, toSelf)));
      const again: Need[] = [];
      for (let i = 0; i < missing.length; i++) {
        const n = missing[i]!;
        if (results[i] !== undefined) { n.error = results[i]; continue; }
        const e = this.cache.touch(n.key);
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
      const cached = this.cache.peek(key);
      if (cached === undefined && f.superseded) {
        // Written, flushed and evicted while we read: what we read may be older. Read again.
        f.superseded = false;
        return this.readInto(key, kind, keyGroup, f);
      }
      if (this.fetches.get(key) === f) this.fetches.delete(key);
      if (cached !== undefined) return cached; // written (or fetched) meanwhile: the cache is newer
      const entry = stored instanceof ChunkedValue
        ? decodeEntry(key, kind, keyGroup, stored.data)
        : decodeEntry(key, kind, keyGroup, stored);
      if (stored instanceof ChunkedValue) entry.chunks = stored.chunks;
      this.cache.insert(entry);
      return entry;
    }, (e: unknown) => {
      if (this.fetches.get(key) === f) this.fetches.delete(key);
      throw e;
    });
  }

  // ------------------------------------------------------------------ applying requests

  private apply(p: Prepared): unknown {
    const request = p.request;
    switch (request.kind) {
      case T.Get:
        return snapshotValue(held(p, EntryKind.Value).value);
      case T.Put:
        if (p.entry === undefined) this.putValue(p.base, request.address, request.value);
        else this.putMapEntry(p, request.value);
        return undefined;
      case T.Append:
        this.append(p, request.value);
        return undefined;
      case T.Scan:
        return this.buildPage(this.scanSlice(p));
      case T.ClearMap:
        this.clearMap(p);
        return undefined;
    }
  }

  /** The entry to write: the cached one, or a new one (a plain write replaces the value whole, no read needed). */
  private writable(key: string, kind: EntryKind, keyGroup: number, address: StateAddress): CacheEntry {
    const fetch = this.fetches.get(key);
    if (fetch !== undefined) fetch.superseded = true;
    let e = this.cache.touch(key);
    if (e === undefined) {
      e = new CacheEntry(key, kind, keyGroup, kind === EntryKind.Index ? new OrderedKeys() : undefined, 0);
      this.cache.insert(e);
    } else if (e.kind !== kind) {
      throw kindConflict(address);
    }
    return e;
  }

  private putValue(key: string, address: StateAddress, value: unknown): void {
    const json = value === undefined ? undefined : serialize(value, address, this.config.maxValueBytes);
    const e = this.writable(key, EntryKind.Value, address.keyGroup, address);
    e.value = value;
    e.json = json;
    this.cache.resize(e, baseBytes(e) + (json?.length ?? 0));
    this.written(e);
  }

  private putMapEntry(p: Prepared, value: unknown): void {
    const address = p.request.address;
    const userKeyId = address.userKeyId!;
    const index = held(p, EntryKind.Index);
    this.putValue(p.entry!, address, value);
    const keys = index.index;
    if (value === undefined ? keys.delete(userKeyId) : keys.add(userKeyId)) {
      const delta = userKeyId.length + INDEX_KEY_OVERHEAD_BYTES;
      this.cache.resize(index, index.bytes + (value === undefined ? -delta : delta));
      this.written(index);
    }
  }

  private append(p: Prepared, values: readonly unknown[]): void {
    const address = p.request.address;
    const e = held(p, EntryKind.Value);
    const added = serialize(values, address, this.config.maxValueBytes);
    const current = e.value;
    if (current !== undefined && !Array.isArray(current)) {
      throw new StateAccessError(`state "${address.state}" for key ${address.keyId}: cannot append to a stored value that is not a list`);
    }
    // Size of the JSON of the appended list, known without serializing it: "[a,b]" + "[c]" = "[a,b,c]".
    const valueBytes = current === undefined || current.length === 0 ? added.length : e.bytes - baseBytes(e) + added.length - 1;
    if (valueBytes > this.config.maxValueBytes) throw tooLarge(address, valueBytes, this.config.maxValueBytes);
    if (current === undefined) e.value = values.slice();
    else for (let i = 0; i < values.length; i++) current.push(values[i]); // no spread: a huge addAll would overflow the call stack
    e.json = undefined;
    this.cache.resize(e, baseBytes(e) + valueBytes);
    this.written(e);
  }

  /** The keys of the page a Scan request asks for, from the map's index (pinned in the cache). */
  private scanSlice(p: Prepared): ScanSlice {
    const request = p.request;
    if (request.kind !== T.Scan) throw new StateAccessError(`state "${request.address.state}": not a scan`);
    const { address, cursor, limit } = request;
    const index = held(p, EntryKind.Index);
    const page = index.index.page(cursor, scanLimit(limit, DEFAULT_SCAN_LIMIT));
    return { ...page, entryKeys: page.keys.map((k) => mapEntryKey(p.base, k, address)) };
  }

  private uncached(keys: readonly string[], keyGroup: number): Need[] {
    const missing: Need[] = [];
    for (const key of keys) if (this.cache.peek(key) === undefined) missing.push(new Need(key, EntryKind.Value, keyGroup));
    return missing;
  }

  /** The page, once every entry of it is in the cache. Entries whose value is absent are left out. */
  private buildPage(page: ScanSlice): ScanPage {
    const entries: Array<readonly [string, unknown]> = [];
    for (let i = 0; i < page.keys.length; i++) {
      const e = this.cache.touch(page.entryKeys[i]!);
      if (e === undefined) throw new StateAccessError(`internal: map entry ${page.entryKeys[i]} is not in the cache`);
      this.counters.hits++;
      if (e.value !== undefined) entries.push([page.keys[i]!, e.value]);
    }
    return page.more ? { entries, cursor: page.keys[page.keys.length - 1]! } : { entries };
  }

  private clearMap(p: Prepared): void {
    const address = p.request.address;
    const index = held(p, EntryKind.Index);
    if (index.index.size === 0) return;
    for (const userKeyId of index.index) this.putValue(mapEntryKey(p.base, userKeyId, address), address, undefined);
    index.index.clear();
    this.cache.resize(index, baseBytes(index));
    this.written(index);
  }

  private written(e: CacheEntry): void {
    this.cache.markDirty(e);
    this.checkpoints?.changed(e);
  }

  // ------------------------------------------------------------------ write-back

  /** Evicts, and flushes when over budget. Returns a promise to wait on when far over budget (backpressure). */
  private afterWrites(): Promise<void> | undefined {
    const withinCache = this.cache.evict();
    const c = this.config;
    const dirtyEntries = this.cache.dirty.size;
    const dirtyBytes = this.cache.dirtyBytes;
    if (this.checkpoints !== undefined) {
      // Nothing may reach KV before a checkpoint commits, and blocking here would hold up the barrier that
      // frees us (a barrier waits for the records in flight, this batch's among them). So: changes of
      // completed checkpoints go to KV now, making them evictable, and a checkpoint is asked for; what was
      // written since the last checkpoint stays in memory until it completes (the bound can be exceeded by
      // the entries of one checkpoint interval).
      if (!withinCache) void this.checkpoints.materializeCommitted().catch((e: unknown) => { this.flushError = e; });
      if (dirtyEntries > c.dirtyMaxEntries || dirtyBytes > c.dirtyMaxBytes || !withinCache) this.checkpoints.overBudget();
      return undefined;
    }
    if (!withinCache) {
      // The cache bound counts dirty entries: the batch completes once they are written and evicted
      // (backpressure), so the cache exceeds its bound by at most the batches in progress.
      return this.makeRoom();
    }
    if (dirtyEntries > c.dirtyMaxEntries || dirtyBytes > c.dirtyMaxBytes) {
      this.flushInBackground();
      if (dirtyEntries > 2 * c.dirtyMaxEntries || dirtyBytes > 2 * c.dirtyMaxBytes) return this.flushing?.catch(() => {});
    }
    return undefined;
  }

  /** Flushes until the clean entries evicted bring the cache within its bounds (or nothing is left to flush). */
  private async makeRoom(): Promise<void> {
    while (!this.closed && !this.cache.evict() && this.cache.dirty.size > 0) {
      this.flushInBackground();
      const run = this.flushing;
      if (run === undefined) return;
      await run.catch(() => {});
      // A failed flush keeps its entries dirty; the error shows in lastFlushError and the next flush retries.
      if (this.flushError !== undefined) return;
    }
  }

  private flushInBackground(): void {
    if (this.flushing !== undefined || this.closed) return;
    void this.startFlush().catch((e: unknown) => { this.flushError = e; });
  }

  private startFlush(): Promise<void> {
    const run = this.writeBack().finally(() => { if (this.flushing === run) this.flushing = undefined; });
    this.flushing = run;
    return run;
  }

  /**
   * Durability "flush": writes every dirty entry to KV. Durability "checkpoint": waits for the
   * materialization of completed checkpoints and writes nothing else (uncommitted changes never reach KV).
   */
  async flush(): Promise<void> {
    if (this.checkpoints !== undefined) {
      // Committed changes may go to KV at any time; uncommitted ones never do.
      await this.checkpoints.materializeCommitted();
      await this.checkpoints.idle();
      return;
    }
    while (this.flushing !== undefined) await this.flushing.catch(() => {});
    this.flushError = undefined;
    if (this.cache.dirty.size > 0) await this.startFlush();
  }

  /**
   * Writes every dirty entry in one pipelined wave: plain values and map entries first, then map indexes,
   * so that a crash in between leaves index entries that point at written values (or entries no index
   * lists yet), never an index naming values that were never written. Entries written again during the
   * flush stay dirty for the next one.
   */
  private async writeBack(): Promise<void> {
    const entries = [...this.cache.dirty];
    const values: CacheEntry[] = [];
    const indexes: CacheEntry[] = [];
    for (const e of entries) (e.kind === EntryKind.Value ? values : indexes).push(e);
    let firstError: unknown;
    const write = async (e: CacheEntry): Promise<void> => {
      const version = e.version;
      try {
        const json = entryJson(e);
        if (json === undefined) await this.remote.remove(e.key, e.chunks);
        else e.chunks = await this.remote.write(e.key, encoder.encode(json), e.chunks);
        if (json === undefined) e.chunks = undefined;
        this.cache.markClean(e, version);
      } catch (err) {
        firstError ??= err;
      }
    };
    // A bounded pool of writers (the pipe's write window): a flush of 100k entries must not create 100k
    // pending async calls at once (measured: ~1 GB of promises and frames).
    await runPool(values, this.config.putConcurrency, write);
    await runPool(indexes, this.config.putConcurrency, write);
    this.counters.flushes++;
    this.cache.evict();
    if (firstError !== undefined) {
      throw new StateAccessError(`flushing state to KV bucket ${this.pipe.bucket} failed: ${(firstError as Error).message ?? String(firstError)}`, { cause: firstError });
    }
  }

  // ------------------------------------------------------------------ checkpoints (durability "checkpoint")

  snapshot(checkpointId: number): Promise<StateSnapshot> {
    return this.requireCheckpoints("snapshot").snapshot(checkpointId);
  }

  notifyCheckpointComplete(checkpointId: number): Promise<number> {
    return this.requireCheckpoints("notifyCheckpointComplete").complete(checkpointId);
  }

  /** Nothing to undo without checkpoints (a snapshot() would have failed already). */
  notifyCheckpointAborted(checkpointId: number): void {
    this.checkpoints?.aborted(checkpointId);
  }

  async restore(snapshots: readonly StateSnapshot[]): Promise<void> {
    const checkpoints = this.requireCheckpoints("restore");
    if (this.counters.requests > 0 || this.cache.size > 0) throw new StateAccessError("restore() must come before any state request");
    this.fresh?.forget(); // the restore writes KV
    await checkpoints.restore(snapshots);
  }

  private requireCheckpoints(what: string): KvCheckpoints {
    if (this.checkpoints === undefined) {
      throw new StateAccessError(`${what}: this jetstream-kv backend was opened with durability "flush"; open it with durability "checkpoint" (config) to take and restore checkpoints`);
    }
    return this.checkpoints;
  }

  // ------------------------------------------------------------------ lifecycle

  metrics(): StateBackendMetrics {
    return {
      cacheEntries: this.cache.size,
      cacheBytes: this.cache.bytes,
      dirtyEntries: this.cache.dirty.size,
      dirtyBytes: this.cache.dirtyBytes,
      hits: this.counters.hits,
      misses: this.counters.misses,
      remoteReads: this.pipe.remoteReads,
      remoteWrites: this.pipe.remoteWrites,
      batches: this.counters.batches,
      requests: this.counters.requests,
      coalescedReads: this.counters.coalescedReads,
      knownAbsent: this.counters.knownAbsent,
      evictions: this.cache.evictions,
      flushes: this.counters.flushes,
    };
  }

  async close(): Promise<void> {
    if (this.closed) return;
    if (this.timer !== undefined) clearInterval(this.timer);
    try {
      await this.flush(); // with checkpoints: only what completed checkpoints hold
    } finally {
      this.closed = true;
      this.pipe.close();
      this.cache.clear();
    }
  }

  /** Most remote reads in flight at once so far: a batch's misses are fetched together, not one by one. */
  get peakReadsInFlight(): number { return this.pipe.peakGetsInFlight; }

  /** Drops everything buffered WITHOUT writing it (a failed subtask: the restart restores a checkpoint). */
  dispose(): void {
    if (this.closed) return;
    if (this.timer !== undefined) clearInterval(this.timer);
    this.closed = true;
    this.pipe.close("the state backend was disposed");
    this.cache.clear();
  }

  /** The error of the last background flush, if it failed (the entries stay dirty and are retried). */
  get lastFlushError(): unknown { return this.flushError; }
}

/** The pinned entry a prepared request needs, checked to be of the kind it expects. */
function held(p: Prepared, kind: EntryKind): CacheEntry {
  const e = p.need?.entry;
  if (e === undefined) throw new StateAccessError(`internal: entry ${p.needKey} is not pinned`);
  if (e.kind !== kind) throw kindConflict(p.request.address);
  return e;
}

function kindConflict(address: StateAddress): StateAccessError {
  return new StateAccessError(`state "${address.state}" of operator "${address.operator}" is used both as a map and as another kind of state`);
}

function needKind(request: StateRequest): EntryKind {
  return request.kind === T.Get || request.kind === T.Append ? EntryKind.Value : EntryKind.Index;
}
