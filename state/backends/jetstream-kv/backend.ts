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
  StateRequest,
  StateRequestType,
} from "../../contracts.ts";
import { StateBackendKind, StateRequestType as T } from "../../contracts.ts";
import type { StateBackendConfig } from "../../config.ts";
import { StateAccessError, StateLimitError } from "../../errors.ts";
import type { KeyGroupRange } from "../../key-groups.ts";
import { OrderedKeys } from "../ordered-keys.ts";
import { checkKeyGroup, checkShape, closedError, scanLimit } from "../request-checks.ts";
import { snapshotValue } from "../snapshot.ts";
import { CacheEntry, EntryKind, INDEX_KEY_OVERHEAD_BYTES, StateCache } from "./cache.ts";
import { baseKey, mapEntryKey } from "./keys.ts";
import type { KvPipe } from "./pipe.ts";
import { RemoteValues } from "./remote-values.ts";

const DEFAULT_SCAN_LIMIT = 256;
const decoder = new TextDecoder();
const encoder = new TextEncoder();

/** A fetch of one key in flight; `superseded` when the key was written meanwhile (its result may be stale). */
interface Fetch {
  promise: Promise<CacheEntry>;
  superseded: boolean;
}

/** One request of a batch, with its keys resolved. */
interface Prepared {
  readonly request: StateRequest;
  /** KV key of the plain entry or of the map's index. */
  readonly base: string;
  /** KV key of the map entry, for map entry requests. */
  readonly entry: string | undefined;
  /** The key this request needs in the cache before it can apply, if any. */
  readonly need: string | undefined;
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
}

export class JetStreamKvStateBackend implements KeyedStateBackend {
  readonly kind = StateBackendKind.JetStreamKv;
  readonly keyGroupRange: KeyGroupRange;
  private readonly cache: StateCache;
  private readonly pipe: KvPipe;
  private readonly remote: RemoteValues;
  private readonly config: StateBackendConfig;
  private readonly fetches = new Map<string, Fetch>();
  private flushing: Promise<void> | undefined;
  private flushError: unknown;
  private readonly timer: ReturnType<typeof setInterval> | undefined;
  private closed = false;
  /** Settles when the last batch submitted has applied its requests. */
  private applied: Promise<void> = Promise.resolve();
  private batchesWaiting = 0;
  private counters = { hits: 0, misses: 0, coalescedReads: 0, batches: 0, requests: 0, flushes: 0 };

  constructor(options: JetStreamKvBackendOptions) {
    this.keyGroupRange = options.keyGroupRange;
    this.config = options.config;
    this.pipe = options.pipe;
    this.remote = new RemoteValues(options.pipe, options.maxPayload);
    this.cache = new StateCache(options.config.cacheMaxEntries, options.config.cacheMaxBytes);
    if (options.config.flushIntervalMs > 0) {
      this.timer = setInterval(() => { if (this.cache.dirty.size > 0) this.flushInBackground(); }, options.config.flushIntervalMs);
      this.timer.unref?.();
    }
  }

  // ------------------------------------------------------------------ batches

  async executeBatch(requests: readonly StateRequest[]): Promise<void> {
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
    try {
      // 1. resolve keys; find what must be in the cache
      const prepared: Prepared[] = [];
      const needKinds = new Map<string, { kind: EntryKind; keyGroup: number }>();
      for (const request of requests) {
        try {
          const p = this.prepare(request);
          prepared.push(p);
          if (p.need !== undefined && !needKinds.has(p.need)) {
            needKinds.set(p.need, { kind: needKind(request), keyGroup: request.address.keyGroup });
          }
        } catch (e) {
          request.reject(e);
        }
      }
      // 2. fetch the missing entries, pipelined; pin them so that no other batch evicts them before we apply
      const pinned = [...needKinds.keys()];
      const failed = needKinds.size > 0 ? await this.pinNeeded(needKinds) : undefined;
      await previous;
      try {
        // 3. apply in order, synchronously: requests on one address see each other in order
        for (const p of prepared) {
          const error = p.need !== undefined ? failed?.get(p.need) : undefined;
          if (error !== undefined) { p.request.reject(error); continue; }
          try {
            let page: ScanSlice | undefined;
            if (p.request.type === T.Scan) {
              // A page's entries not in the cache are fetched before the scan applies (and before anything
              // after it): nothing else applies meanwhile, so the page shows exactly the state at its turn.
              page = this.scanSlice(p);
              const missing = this.uncached(page.entryKeys, p.request.address.keyGroup);
              if (missing.size > 0) {
                pinned.push(...missing.keys());
                const scanFailed = await this.pinNeeded(missing);
                if (scanFailed !== undefined) {
                  for (const k of scanFailed.keys()) pinned.splice(pinned.indexOf(k), 1);
                  throw scanFailed.values().next().value;
                }
              }
            }
            p.request.resolve(page !== undefined ? this.buildPage(page) : this.apply(p));
          } catch (e) {
            p.request.reject(e);
          }
        }
      } finally {
        for (const key of pinned) { const e = this.cache.peek(key); if (e && !failed?.has(key)) e.pins--; }
      }
    } finally {
      this.batchesWaiting--;
      applied();
    }
    const pressure = this.afterWrites();
    if (pressure) await pressure;
  }

  /**
   * Sync mode fast path: a cached Get and a plain Put complete without a request object or a batch.
   * Everything else runs as a batch of one.
   */
  executeOne(type: StateRequestType, address: StateAddress, value?: unknown, cursor?: string, limit?: number): unknown {
    if (!this.closed && this.batchesWaiting === 0 && address.userKeyId === undefined && (type === T.Get || type === T.Put)) {
      checkKeyGroup(this.keyGroupRange, address);
      const key = baseKey(address);
      if (type === T.Put) {
        this.counters.batches++;
        this.counters.requests++;
        this.putValue(key, address, value);
        return this.afterWrites();
      }
      const e = this.cache.touch(key);
      if (e !== undefined && e.kind === EntryKind.Value) {
        this.counters.batches++;
        this.counters.requests++;
        this.counters.hits++;
        return snapshotValue(e.value);
      }
    }
    return new Promise((resolve, reject) => {
      void this.executeBatch([{ type, address, value, cursor, limit, resolve, reject }]);
    });
  }

  private prepare(request: StateRequest): Prepared {
    const { type, address } = request;
    checkKeyGroup(this.keyGroupRange, address);
    checkShape(type, address, request.value);
    const base = baseKey(address);
    const entry = address.userKeyId === undefined ? undefined : mapEntryKey(base, address.userKeyId, address);
    let need: string | undefined;
    switch (type) {
      case T.Get: need = entry ?? base; break;
      case T.Append: need = base; break;
      case T.Put: need = entry === undefined ? undefined : base; break; // map entries update the map's index
      case T.Scan:
      case T.ClearMap: need = base; break;
    }
    return { request, base, entry, need };
  }

  /** Fetches until every needed key is in the cache, then pins them. Returns the keys that failed. */
  private async pinNeeded(needs: Map<string, { kind: EntryKind; keyGroup: number }>): Promise<Map<string, unknown> | undefined> {
    let failed: Map<string, unknown> | undefined;
    let missing: string[] = [];
    for (const key of needs.keys()) {
      const e = this.cache.touch(key);
      if (e !== undefined) { e.pins++; this.counters.hits++; } else missing.push(key);
    }
    while (missing.length > 0) {
      const results = await Promise.all(missing.map((key) => {
        const need = needs.get(key)!;
        return this.fetch(key, need.kind, need.keyGroup).then(() => undefined, (e: unknown) => e);
      }));
      const again: string[] = [];
      for (let i = 0; i < missing.length; i++) {
        const key = missing[i]!;
        if (results[i] !== undefined) { (failed ??= new Map()).set(key, results[i]); continue; }
        const e = this.cache.touch(key);
        // Evicted by another batch between its arrival and now: fetch again (rare; needs a cache smaller than the batches in flight).
        if (e === undefined) again.push(key); else e.pins++;
      }
      missing = again;
    }
    return failed;
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
    f.promise = this.readRemote(key, kind, keyGroup, f).finally(() => this.fetches.delete(key));
    this.fetches.set(key, f);
    return f.promise;
  }

  private async readRemote(key: string, kind: EntryKind, keyGroup: number, f: Fetch): Promise<CacheEntry> {
    for (;;) {
      const stored = await this.remote.read(key);
      const cached = this.cache.peek(key);
      if (cached !== undefined) return cached; // written (or fetched) meanwhile: the cache is newer
      if (f.superseded) { f.superseded = false; continue; } // written, flushed and evicted meanwhile: read again
      const entry = decodeEntry(key, kind, keyGroup, stored?.data);
      entry.chunks = stored?.chunks;
      this.cache.insert(entry);
      return entry;
    }
  }

  // ------------------------------------------------------------------ applying requests

  private apply(p: Prepared): unknown {
    const { type, address, value } = p.request;
    switch (type) {
      case T.Get: {
        const e = this.cached(p.need!, EntryKind.Value, address);
        return snapshotValue(e.value);
      }
      case T.Put:
        if (p.entry === undefined) this.putValue(p.base, address, value);
        else this.putMapEntry(p, value);
        return undefined;
      case T.Append:
        this.append(p, value as unknown[]);
        return undefined;
      case T.Scan:
        return this.buildPage(this.scanSlice(p));
      case T.ClearMap:
        this.clearMap(p);
        return undefined;
    }
  }

  private cached(key: string, kind: EntryKind, address: StateAddress): CacheEntry {
    const e = this.cache.touch(key);
    if (e === undefined) throw new StateAccessError(`internal: entry ${key} is not in the cache`);
    if (e.kind !== kind) {
      throw new StateAccessError(`state "${address.state}" of operator "${address.operator}" is used both as a map and as another kind of state`);
    }
    return e;
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
      throw new StateAccessError(`state "${address.state}" of operator "${address.operator}" is used both as a map and as another kind of state`);
    }
    return e;
  }

  private putValue(key: string, address: StateAddress, value: unknown): void {
    const json = value === undefined ? undefined : serialize(value, address, this.config.maxValueBytes);
    const e = this.writable(key, EntryKind.Value, address.keyGroup, address);
    e.value = value;
    e.json = json;
    this.cache.resize(e, baseBytes(e) + (json?.length ?? 0));
    this.cache.markDirty(e);
  }

  private putMapEntry(p: Prepared, value: unknown): void {
    const address = p.request.address;
    const userKeyId = address.userKeyId!;
    const index = this.cached(p.base, EntryKind.Index, address);
    this.putValue(p.entry!, address, value);
    const keys = index.index;
    if (value === undefined ? keys.delete(userKeyId) : keys.add(userKeyId)) {
      const delta = userKeyId.length + INDEX_KEY_OVERHEAD_BYTES;
      this.cache.resize(index, index.bytes + (value === undefined ? -delta : delta));
      this.cache.markDirty(index);
    }
  }

  private append(p: Prepared, values: unknown[]): void {
    const address = p.request.address;
    const e = this.cached(p.base, EntryKind.Value, address);
    const added = serialize(values, address, this.config.maxValueBytes);
    const current = e.value;
    if (current !== undefined && !Array.isArray(current)) {
      throw new StateAccessError(`state "${address.state}" for key ${address.keyId}: cannot append to a stored value that is not a list`);
    }
    // Size of the JSON of the appended list, known without serializing it: "[a,b]" + "[c]" = "[a,b,c]".
    const valueBytes = current === undefined || current.length === 0 ? added.length : e.bytes - baseBytes(e) + added.length - 1;
    if (valueBytes > this.config.maxValueBytes) throw tooLarge(address, valueBytes, this.config.maxValueBytes);
    if (current === undefined) e.value = values.slice();
    else current.push(...values);
    e.json = undefined;
    this.cache.resize(e, baseBytes(e) + valueBytes);
    this.cache.markDirty(e);
  }

  /** The keys of the page a Scan request asks for, from the map's index (pinned in the cache). */
  private scanSlice(p: Prepared): ScanSlice {
    const { address, cursor, limit } = p.request;
    const index = this.cached(p.base, EntryKind.Index, address);
    const page = index.index.page(cursor, scanLimit(limit, DEFAULT_SCAN_LIMIT));
    return { ...page, entryKeys: page.keys.map((k) => mapEntryKey(p.base, k, address)) };
  }

  private uncached(keys: readonly string[], keyGroup: number): Map<string, { kind: EntryKind; keyGroup: number }> {
    const missing = new Map<string, { kind: EntryKind; keyGroup: number }>();
    for (const key of keys) if (this.cache.peek(key) === undefined) missing.set(key, { kind: EntryKind.Value, keyGroup });
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
    const index = this.cached(p.base, EntryKind.Index, address);
    if (index.index.size === 0) return;
    for (const userKeyId of index.index) this.putValue(mapEntryKey(p.base, userKeyId, address), address, undefined);
    index.index.clear();
    this.cache.resize(index, baseBytes(index));
    this.cache.markDirty(index);
  }

  // ------------------------------------------------------------------ write-back

  /** Evicts, and flushes when over budget. Returns a promise to wait on when far over budget (backpressure). */
  private afterWrites(): Promise<void> | undefined {
    const withinCache = this.cache.evict();
    const c = this.config;
    const dirtyEntries = this.cache.dirty.size;
    const dirtyBytes = this.cache.dirtyBytes;
    if (dirtyEntries > c.dirtyMaxEntries || dirtyBytes > c.dirtyMaxBytes || !withinCache) {
      this.flushInBackground();
      if (dirtyEntries > 2 * c.dirtyMaxEntries || dirtyBytes > 2 * c.dirtyMaxBytes || (!withinCache && this.cache.size > 2 * c.cacheMaxEntries)) {
        return this.flushing?.catch(() => {});
      }
    }
    return undefined;
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

  async flush(): Promise<void> {
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
        const json = e.kind === EntryKind.Value ? e.json ?? (e.value === undefined ? undefined : JSON.stringify(e.value)) : indexJson(e.index);
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
      evictions: this.cache.evictions,
      flushes: this.counters.flushes,
    };
  }

  async close(): Promise<void> {
    if (this.closed) return;
    if (this.timer !== undefined) clearInterval(this.timer);
    try {
      await this.flush();
    } finally {
      this.closed = true;
      this.pipe.close();
      this.cache.clear();
    }
  }

  /** The error of the last background flush, if it failed (the entries stay dirty and are retried). */
  get lastFlushError(): unknown { return this.flushError; }
}

/** Calls `fn` on every item with at most `concurrency` calls pending. */
async function runPool<T>(items: readonly T[], concurrency: number, fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  const worker = async (): Promise<void> => { while (next < items.length) await fn(items[next++]!); };
  await Promise.all(Array.from({ length: Math.min(concurrency, items.length) }, worker));
}

function needKind(request: StateRequest): EntryKind {
  return request.type === T.Get || request.type === T.Append ? EntryKind.Value : EntryKind.Index;
}

function baseBytes(e: CacheEntry): number {
  return 160 + e.key.length;
}

function serialize(value: unknown, address: StateAddress, maxBytes: number): string {
  let json: string | undefined;
  try {
    json = JSON.stringify(value);
  } catch (e) {
    throw new StateAccessError(`state "${address.state}" for key ${address.keyId}: the value cannot be stored as JSON: ${(e as Error).message}`, { cause: e });
  }
  if (json === undefined) throw new StateAccessError(`state "${address.state}" for key ${address.keyId}: the value cannot be stored as JSON`);
  // UTF-16 length is a lower bound of the UTF-8 size, 3x an upper bound: count exactly only near the limit.
  if (json.length * 3 > maxBytes) {
    const bytes = Buffer.byteLength(json, "utf8");
    if (bytes > maxBytes) throw tooLarge(address, bytes, maxBytes);
  }
  return json;
}

function tooLarge(address: StateAddress, bytes: number, maxBytes: number): StateLimitError {
  return new StateLimitError(
    `state "${address.state}" for key ${address.keyId}${address.userKeyId === undefined ? "" : ` (map key ${address.userKeyId})`}: the value is ${bytes} bytes, more than maxValueBytes ${maxBytes}; it was not stored`,
  );
}

function indexJson(keys: OrderedKeys): string | undefined {
  return keys.size === 0 ? undefined : JSON.stringify([...keys]);
}

function decodeEntry(key: string, kind: EntryKind, keyGroup: number, data: Uint8Array | undefined): CacheEntry {
  if (kind === EntryKind.Index) {
    const keys = new OrderedKeys();
    let bytes = 0;
    if (data !== undefined) {
      for (const k of parseJson(key, data) as string[]) { keys.add(k); bytes += k.length + INDEX_KEY_OVERHEAD_BYTES; }
    }
    return new CacheEntry(key, kind, keyGroup, keys, bytes);
  }
  return new CacheEntry(key, kind, keyGroup, data === undefined ? undefined : parseJson(key, data), data?.length ?? 0);
}

function parseJson(key: string, data: Uint8Array): unknown {
  try {
    return JSON.parse(decoder.decode(data));
  } catch (e) {
    throw new StateAccessError(`KV key ${key} does not hold JSON (${data.length} bytes): ${(e as Error).message}`, { cause: e });
  }
}
