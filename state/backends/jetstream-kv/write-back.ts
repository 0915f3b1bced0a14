// Step 3 of a batch (see backend.ts): evict, and write the dirty entries back to KV when over budget, on
// a timer or on flush(). With durability "checkpoint" only completed checkpoints reach KV (checkpoints.ts).
//
// Over the dirty budget, a wave writes the oldest dirty entries only, until a tenth of the budget is free,
// as Kafka Streams' record cache writes what it evicts and keeps the rest: entries written again soon
// stay in memory, and a sorted drain (each key once) writes the keys beyond the budget, not every key it
// holds (bench/backlog.bench.ts). A cache full of dirty entries, a timer, flush() and close() write every
// dirty entry: waves of the oldest there kept a small cache nearly full of dirty entries, so that batch
// after batch waited for room (a 10k-entry cache: more reads, and slower, in paired runs).

import type { StateBackendConfig } from "../../config.ts";
import { StateAccessError } from "../../errors.ts";
import { EntryKind, type CacheEntry, type StateCache } from "./cache.ts";
import type { KvCheckpoints } from "./checkpoints.ts";
import { writeWave, type EntryWrite } from "./entry-writes.ts";
import { entryJson } from "./entry-json.ts";
import type { KvPipe } from "./pipe.ts";
import type { RemoteValues } from "./remote-values.ts";

/** What a wave writes: every dirty entry, or the oldest ones, down to LEFT_DIRTY of the budget. */
type Wave = "all" | "oldest";

/** The part of the dirty budget an over-budget wave leaves dirty. */
const LEFT_DIRTY = 0.9;

export class WriteBack {
  private flushing: Promise<void> | undefined;
  private flushError: unknown;

  constructor(
    private readonly cache: StateCache,
    private readonly remote: RemoteValues,
    private readonly pipe: KvPipe,
    private readonly config: StateBackendConfig,
    /** Present with durability "checkpoint": then only completed checkpoints reach KV. */
    private readonly checkpoints: KvCheckpoints | undefined,
    private readonly counters: { flushes: number },
    private readonly isClosed: () => boolean,
  ) {}

  /** The error of the last background flush, if it failed (the entries stay dirty and are retried). */
  get lastError(): unknown { return this.flushError; }

  /** Evicts, and flushes when over budget. Returns a promise to wait on when far over budget (backpressure). */
  afterWrites(): Promise<void> | undefined {
    const withinCache = this.cache.evict();
    if (this.checkpoints !== undefined) {
      // Nothing may reach KV before a checkpoint commits, and blocking here would hold up the barrier that
      // frees us (a barrier waits for the records in flight, this batch's among them). So: changes of
      // completed checkpoints go to KV now, making them evictable, and a checkpoint is asked for; what was
      // written since the last checkpoint stays in memory until it completes (the bound can be exceeded by
      // the entries of one checkpoint interval). Waiting for a running materialization is safe, and is how a
      // job whose state changes faster than KV takes them slows down instead of growing.
      if (!withinCache) void this.checkpoints.materializeCommitted().catch((e: unknown) => { this.flushError = e; });
      if (this.overBudget() || !withinCache) this.checkpoints.overBudget();
      return this.checkpoints.behind(this.config.dirtyMaxEntries / 8);
    }
    if (!withinCache) {
      // The cache bound counts dirty entries: the batch completes once they are written and evicted
      // (backpressure), so the cache exceeds its bound by at most the batches in progress.
      return this.makeRoom();
    }
    if (this.overBudget()) {
      this.flushInBackground("oldest");
      // Far over budget: wait until within twice the budget, not just for the running flush, which did
      // not capture these writes; released at its end, the writers of each flush would add theirs to the
      // next, and the dirty entries outgrow 2 × budget + records in flight (tests/state-options).
      if (this.farOverBudget()) return this.flushUntil(() => !this.farOverBudget(), "oldest");
    }
    return undefined;
  }

  /**
   * The oldest dirty entries, leaving LEFT_DIRTY of the budget (and of the cache's bounds, which dirty
   * entries count against) dirty; every dirty entry when those include a map index, which may only be
   * written after the map's entries (see writeBack), or when none would be written (over budget that
   * cannot happen; were it to, an empty wave followed by the next would never yield).
   */
  private oldestDirty(): CacheEntry[] {
    const c = this.config;
    const cache = this.cache;
    const leaveEntries = Math.floor(LEFT_DIRTY * Math.min(c.dirtyMaxEntries, cache.maxEntries));
    const leaveBytes = Math.floor(LEFT_DIRTY * Math.min(c.dirtyMaxBytes, cache.maxBytes));
    const oldest = cache.dirty.oldest(leaveEntries, leaveBytes, cache.dirtyBytes);
    return oldest.length === 0 || oldest.some((e) => e.kind !== EntryKind.Value) ? cache.dirty.entries() : oldest;
  }

  private overBudget(): boolean {
    return this.cache.dirty.size > this.config.dirtyMaxEntries || this.cache.dirtyBytes > this.config.dirtyMaxBytes;
  }

  private farOverBudget(): boolean {
    return this.cache.dirty.size > 2 * this.config.dirtyMaxEntries || this.cache.dirtyBytes > 2 * this.config.dirtyMaxBytes;
  }

  /** Flushes until the clean entries evicted bring the cache within its bounds (or nothing is left to flush). */
  private makeRoom(): Promise<void> {
    return this.flushUntil(() => this.cache.evict() || this.cache.dirty.size === 0, "all");
  }

  /** Waits for the running flush and starts the next, until `done` (or the backend closed, or a flush failed). */
  private async flushUntil(done: () => boolean, wave: Wave): Promise<void> {
    while (!this.isClosed() && !done()) {
      this.flushInBackground(wave);
      const run = this.flushing;
      if (run === undefined) return;
      await run.catch(() => {});
      // A failed flush keeps its entries dirty; the error shows in lastFlushError and the next flush retries.
      if (this.flushError !== undefined) return;
    }
  }

  flushInBackground(wave: Wave = "all"): void {
    if (this.flushing !== undefined || this.isClosed()) return;
    void this.startFlush(wave).catch((e: unknown) => { this.flushError = e; });
  }

  private startFlush(wave: Wave): Promise<void> {
    const run = this.writeBack(wave).finally(() => { if (this.flushing === run) this.flushing = undefined; });
    this.flushing = run;
    // Writes made during the wave may leave the budget exceeded with no write to come that would notice.
    if (wave === "oldest") void run.then(() => { if (this.overBudget()) this.flushInBackground("oldest"); }, () => {});
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
    if (this.cache.dirty.size > 0) await this.startFlush("all");
  }

  /**
   * Writes the wave's dirty entries, pipelined: plain values and map entries first, then map indexes,
   * so that a crash in between leaves index entries that point at written values (or entries no index
   * lists yet), never an index naming values that were never written. Entries written again during the
   * flush stay dirty for the next one.
   */
  private async writeBack(wave: Wave): Promise<void> {
    const entries = wave === "all" ? this.cache.dirty.entries() : this.oldestDirty();
    const values: CacheEntry[] = [];
    const indexes: CacheEntry[] = [];
    for (const e of entries) (e.kind === EntryKind.Value ? values : indexes).push(e);
    let firstError: unknown;
    const failed = (err: unknown): void => { firstError ??= err; };
    const write = (e: CacheEntry): EntryWrite => ({ entry: e, json: entryJson(e), version: e.version });
    // A bounded number of writes pending (the pipe's write window): a flush of 100k entries must not
    // create 100k pending writes at once (measured: ~1 GB of promises and frames).
    await writeWave(this.remote, this.cache, values, this.config.putConcurrency, write, failed);
    await writeWave(this.remote, this.cache, indexes, this.config.putConcurrency, write, failed);
    this.counters.flushes++;
    this.cache.evict();
    if (firstError !== undefined) {
      throw new StateAccessError(`flushing state to KV bucket ${this.pipe.bucket} failed: ${(firstError as Error).message ?? String(firstError)}`, { cause: firstError });
    }
  }
}
