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
import { checkKeyGroup, checkShape, closedError } from "../request-checks.ts";
import { snapshotValue } from "../snapshot.ts";
import { EntryKind, StateCache, type CacheEntry } from "./cache.ts";
import { baseKey, mapEntryKey } from "./keys.ts";
import type { KvPipe } from "./pipe.ts";
import { RemoteValues } from "./remote-values.ts";
import type { ChangelogStream } from "../changelog/stream.ts";
import { KvCheckpoints } from "./checkpoints.ts";
import { CachedEntries, kindConflict, type ScanSlice } from "./entries.ts";
import { EntryLoader, Need } from "./loader.ts";
import { held, needKind, type Prepared } from "./prepared.ts";
import { WriteBack } from "./write-back.ts";
import { FreshBucketKeys } from "./fresh-keys.ts";

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

/**
 * What a state address resolves to in this backend (StateAddress.keyMemo): the cache entry it last saw
 * (whose `key` is the address's KV key) or, before any, the KV key. The entry itself, not a holder of it:
 * a warm read or write follows one reference fewer (measured: that load was most of tryNow's time).
 */
type AddressMemo = CacheEntry | string;
const keyOfMemo = (memo: AddressMemo): string => (typeof memo === "string" ? memo : memo.key);

export class JetStreamKvStateBackend implements KeyedStateBackend {
  readonly kind = StateBackendKind.JetStreamKv;
  readonly keyGroupRange: KeyGroupRange;
  private readonly cache: StateCache;
  private readonly pipe: KvPipe;
  private readonly remote: RemoteValues;
  private readonly config: StateBackendConfig;
  private readonly loader: EntryLoader;
  private readonly entries: CachedEntries;
  private readonly writeBack: WriteBack;
  private readonly fresh: FreshBucketKeys | undefined;

  /** Present with durability "checkpoint": then only completed checkpoints reach KV. */
  private readonly checkpoints: KvCheckpoints | undefined;
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
    this.cache = new StateCache(options.config.cacheMaxEntries, options.config.cacheMaxBytes, fresh && ((key) => fresh.onEvict(key)), this.keyGroupRange.start);
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
      this.timer = setInterval(() => { if (this.cache.dirty.size > 0) this.writeBack.flushInBackground(); }, options.config.flushIntervalMs);
      this.timer.unref?.();
    }
    this.loader = new EntryLoader(this.cache, this.remote, fresh, this.counters);
    const checkpoints = this.checkpoints;
    this.entries = new CachedEntries(this.cache, this.loader, this.config, this.counters, checkpoints ? (e) => checkpoints.changed(e) : () => {});
    this.writeBack = new WriteBack(this.cache, this.remote, this.pipe, this.config, checkpoints, this.counters, () => this.closed);
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
      const missing = this.loader.pinCached(needs.values());
      if (missing.length > 0) await this.loader.fetchAndPin(missing);
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
              const uncached = this.loader.uncached(page.entryKeys, p.request.address.keyGroup);
              if (uncached.length > 0) {
                scanNeeds = scanNeeds === undefined ? uncached : scanNeeds.concat(uncached);
                await this.loader.fetchAndPin(uncached);
                const failed = uncached.find((n) => n.entry === undefined);
                if (failed !== undefined) throw failed.error;
              }
            }
            p.result = page !== undefined ? this.entries.buildPage(page) : this.apply(p);
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
    const pressure = this.writeBack.afterWrites();
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
    if (kind !== T.Put && kind !== T.Get) return NOT_APPLIED;
    // A full cache makes room by sweeping it: once per batch, not once per request.
    if (kind === T.Put && this.cache.overLimit) return NOT_APPLIED;
    const memo = this.resolve(address);
    // The key's entry as this address last saw it, while it stays in the cache: no lookup by key.
    let e = typeof memo !== "string" && memo.cached ? memo : undefined;
    if (kind === T.Put) {
      this.counters.requests++;
      if (e !== undefined && e.kind === EntryKind.Value && this.loader.reading === 0) this.entries.setValue(e, address, request.value);
      else address.keyMemo = this.entries.putValue(keyOfMemo(memo), address, request.value);
      return this.writeBack.afterWrites();
    }
    if (e !== undefined) e.ref = true;
    else e = this.cache.touch(keyOfMemo(memo), address.keyGroup);
    if (e !== undefined) this.counters.hits++;
    else if (this.cache.overLimit) {
      // A full cache takes no new entry here (the batch that writes makes room). A key KV cannot hold
      // still reads as absent at once: the first read of each new key (most of a backlog drain's keys once
      // the cache is full) would otherwise wait for a batch, and for room, only to learn that.
      if (!this.loader.absentFromKv(keyOfMemo(memo))) return NOT_APPLIED;
      this.counters.requests++;
      this.counters.knownAbsent++;
      return undefined;
    } else if ((e = this.loader.knownAbsent(keyOfMemo(memo), EntryKind.Value, address.keyGroup)) === undefined) return NOT_APPLIED;
    if (e.kind !== EntryKind.Value) throw kindConflict(address);
    address.keyMemo = e;
    this.counters.requests++;
    return snapshotValue(e.value);
  }

  knownEmpty(address: StateAddress): boolean {
    if (this.closed || address.userKeyId !== undefined) return false;
    // A new job's empty cache over an empty bucket (what a backlog bootstraps from): no key to build.
    if (this.cache.size === 0 && this.loader.reading === 0 && this.fresh?.empty === true) return true;
    const key = this.baseKeyOf(address);
    const e = this.cache.peek(key, address.keyGroup);
    if (e !== undefined) return e.kind === EntryKind.Value && e.value === undefined;
    return this.fresh !== undefined && !this.loader.isReading(key) && this.fresh.isAbsent(key);
  }

  /** The address's KV key, memoized on the address (see StateAddress.keyMemo). */
  private baseKeyOf(address: StateAddress): string {
    return keyOfMemo(this.resolve(address));
  }

  /** What the address resolves to here, memoized on it (its key group checked once). */
  private resolve(address: StateAddress): AddressMemo {
    if (address.keyOwner === this && address.keyMemo !== undefined) return address.keyMemo as AddressMemo;
    checkKeyGroup(this.keyGroupRange, address);
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

  // ------------------------------------------------------------------ applying requests

  private apply(p: Prepared): unknown {
    const request = p.request;
    const address = request.address;
    switch (request.kind) {
      case T.Get:
        return snapshotValue(held(p, EntryKind.Value).value);
      case T.Put:
        if (p.entry === undefined) this.entries.putValue(p.base, address, request.value);
        else this.entries.putMapEntry(held(p, EntryKind.Index), p.entry, address, request.value);
        return undefined;
      case T.Append:
        this.entries.append(held(p, EntryKind.Value), address, request.value);
        return undefined;
      case T.Scan:
        return this.entries.buildPage(this.scanSlice(p));
      case T.ClearMap:
        this.entries.clearMap(held(p, EntryKind.Index), p.base, address);
        return undefined;
    }
  }

  /** The keys of the page a Scan request asks for, from the map's index (pinned in the cache). */
  private scanSlice(p: Prepared): ScanSlice {
    const request = p.request;
    if (request.kind !== T.Scan) throw new StateAccessError(`state "${request.address.state}": not a scan`);
    const { address, cursor, limit } = request;
    return this.entries.scanSlice(held(p, EntryKind.Index), p.base, address, cursor, limit);
  }

  /**
   * Durability "flush": writes every dirty entry to KV. Durability "checkpoint": waits for the
   * materialization of completed checkpoints and writes nothing else (uncommitted changes never reach KV).
   */
  flush(): Promise<void> {
    return this.writeBack.flush();
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
      writesFenced: this.pipe.writesFenced,
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
  get lastFlushError(): unknown { return this.writeBack.lastError; }
}
