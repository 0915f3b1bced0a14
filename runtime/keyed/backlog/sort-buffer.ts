// The backlog sort buffer of a keyed operator (FLIP-327): records are held in memory up to a budget; when
// the budget is exceeded, the largest key groups, a quarter of the budget's worth, are written to local
// disk as a run (spilled-runs.ts); at the end, the runs and what is left in memory are drained together.
// Each key's records come back together in arrival order, keys by key group, which is what makes
// replaying a key's records reproduce streaming results.
//
// In memory, records are kept as they arrived, bucketed per key in parallel arrays (no per-record
// object, no serialization): a backlog that fits in memory is never encoded, and nothing is sorted (each
// key is listed under its key group when first seen). Their size is estimated from the JSON length of a
// sample of values. A reduce whose key's state is empty folds the key's records as they arrive (ArrivalFold): the
// buffer then holds one running value per key instead of every record, the same values in the same order
// as streaming would apply them.
import { ErrorCode, WeirError } from "../../core/errors.ts";
import { canonicalJson } from "../../../state/key-groups.ts";
import { SortedKey, type ArrivalFold } from "./sorted-key.ts";
import { SpilledRuns } from "./spilled-runs.ts";

/** The key group of a key seen for the first time (the operator checks it is in its range there). */
export type KeyGroupOf = (key: unknown) => number;

export interface SortBudget {
  /** In-memory bytes before a run is spilled. */
  readonly memoryBytes: number;
  /** Total bytes of spilled runs allowed on disk. */
  readonly diskBytes: number;
  readonly directory: string;
  /** Names the operator in errors. */
  readonly operator: string;
}

/** Estimated bytes per buffered record besides its value (array slots, a bucket's share). */
const RECORD_OVERHEAD = 40;
const BUCKET_OVERHEAD = 200;
/** One value in this many is measured (JSON length) to estimate the rest. */
const SAMPLE_EVERY = 16;
/**
 * A spill writes about this share of the budget: a backlog somewhat over the budget then sends little
 * more than its excess through the disk (half the budget per spill wrote ~64 of 88 MB; a quarter, ~32 MB:
 * the 1M-record, 500k-key sorted run ~0.95x wall), at the cost of twice as many, smaller runs.
 */
const SPILL_SHARE = 0.25;

export class SortBuffer {
  /**
   * Per key (a key belongs to one key group), placed by key group only when drained or spilled.
   * String keys are looked up by themselves (no canonical JSON per record: most keys are strings), other
   * keys by their canonical JSON; two maps, so that "1" and 1 stay apart.
   */
  private byString = new Map<string, SortedKey>();
  private byJson = new Map<string, SortedKey>();
  /** The same keys by key group (in order of first arrival): a spill takes whole groups without a scan. */
  private groups: Array<SortedKey[] | undefined> = [];
  /** Per key group: its records, and its keys' bytes besides their records (a spill's size estimate). */
  private groupRecords: number[] = [];
  private groupKeyBytes: number[] = [];
  private memoryBytes = 0;
  private readonly runs: SpilledRuns;
  private diskBytes = 0;
  private sampledBytes = 0;
  private samples = 0;
  records = 0;
  spills = 0;

  /** `watermark`: the watermark when buffering starts (most records arrive under it). */
  constructor(private readonly budget: SortBudget, private readonly watermark = Number.NEGATIVE_INFINITY, private readonly arrivalFold?: ArrivalFold) {
    // A key group's spilled text becomes objects of about three times its size when read back.
    this.runs = new SpilledRuns(budget.directory, watermark, budget.memoryBytes / 4);
  }

  get size(): number { return this.records; }
  /** The estimated bytes of the records in memory (what the budget bounds). */
  get estimatedMemoryBytes(): number { return this.memoryBytes; }

  /**
   * Adds a record of `key`, with the watermark when it arrived (its timers fire before it when the backlog
   * is replayed); `keyGroupOf` places a key seen for the first time. Spills the memory buffer as a sorted
   * run when over budget (the caller awaits that).
   */
  add(key: unknown, keyGroupOf: KeyGroupOf, watermark: number, timestamp: number | undefined, input: number, value: unknown): void | Promise<void> {
    const bucket = typeof key === "string" ? (this.byString.get(key) ?? this.newBucket(this.byString, key, key, keyGroupOf)) : this.bucketByJson(key, keyGroupOf);
    if (bucket.folding) bucket.fold(value, this.arrivalFold!, key, watermark, timestamp, input);
    else bucket.push(value, watermark, timestamp, input);
    this.groupRecords[bucket.keyGroup]!++;
    // A folded record is accounted as if it were kept: spills come at the same points, and a fold that
    // grows its value (a concatenation) is still bounded.
    if (this.records % SAMPLE_EVERY === 0) {
      this.sampledBytes += JSON.stringify(value)?.length ?? 8;
      this.samples++;
    }
    this.records++;
    this.memoryBytes += RECORD_OVERHEAD + this.sampledBytes / this.samples;
    if (this.memoryBytes >= this.budget.memoryBytes) return this.spill();
  }

  private bucketByJson(key: unknown, keyGroupOf: KeyGroupOf): SortedKey {
    const keyId = canonicalJson(key);
    return this.byJson.get(keyId) ?? this.newBucket(this.byJson, keyId, key, keyGroupOf);
  }

  private newBucket(map: Map<string, SortedKey>, mapKey: string, key: unknown, keyGroupOf: KeyGroupOf): SortedKey {
    const keyId = map === this.byJson ? mapKey : canonicalJson(key);
    const keyGroup = keyGroupOf(key);
    const bucket = new SortedKey(keyGroup, keyId, this.watermark, mapKey);
    bucket.folding = this.arrivalFold !== undefined && this.spills === 0 && this.arrivalFold.canFold(key, keyGroup, keyId);
    map.set(mapKey, bucket);
    const keyBytes = BUCKET_OVERHEAD + 2 * keyId.length;
    this.memoryBytes += keyBytes;
    const group = this.groups[keyGroup];
    if (group === undefined) {
      this.groups[keyGroup] = [bucket];
      this.groupRecords[keyGroup] = 0;
      this.groupKeyBytes[keyGroup] = keyBytes;
    } else {
      group.push(bucket);
      this.groupKeyBytes[keyGroup]! += keyBytes;
    }
    return bucket;
  }

  /**
   * The in-memory keys by key group (within a group, in order of first arrival); empties memory. What a
   * drain without spilled runs needs: each key's records are already together, and the order of keys only
   * matters for merging runs.
   */
  private takeGrouped(): SortedKey[] {
    const keys: SortedKey[] = [];
    for (const group of this.groups) if (group !== undefined) for (const k of group) keys.push(k);
    this.byString = new Map();
    this.byJson = new Map();
    this.groups = [];
    this.groupRecords = [];
    this.groupKeyBytes = [];
    this.memoryBytes = 0;
    return keys;
  }

  /**
   * The keys of the largest key groups, about `target` bytes of them, taken out of memory (by key group):
   * a spill writes only what makes room, so a backlog somewhat over the budget sends a part of its records
   * through the disk, not all of them. Each group's records stay in arrival order: a group's runs hold its
   * records up to each of its spills, and memory what came after its last one (what `drain` appends).
   */
  private takeLargestGroups(target: number): { keys: SortedKey[]; bytes: number } {
    const perRecord = RECORD_OVERHEAD + (this.samples > 0 ? this.sampledBytes / this.samples : 0);
    const sizes: Array<[number, number]> = [];
    this.groups.forEach((keys, group) => {
      if (keys !== undefined) sizes.push([group, this.groupKeyBytes[group]! + this.groupRecords[group]! * perRecord]);
    });
    sizes.sort((x, y) => y[1] - x[1]);
    const chosen: number[] = [];
    let bytes = 0;
    for (const [group, b] of sizes) {
      if (bytes >= target) break;
      chosen.push(group);
      bytes += b;
    }
    chosen.sort((a, b) => a - b);
    const keys: SortedKey[] = [];
    for (const group of chosen) {
      for (const k of this.groups[group]!) {
        keys.push(k);
        // A string key is its own map key, never equal to its key id (JSON adds quotes); others map by key id.
        (k.mapKey === k.keyId ? this.byJson : this.byString).delete(k.mapKey);
      }
      this.groups[group] = undefined;
    }
    this.memoryBytes = this.byString.size + this.byJson.size === 0 ? 0 : Math.max(0, this.memoryBytes - bytes);
    return { keys, bytes };
  }

  /**
   * Every buffered key with its records in arrival order, in batches of about `batchKeys` keys, by key
   * group; the buffer is empty afterwards.
   */
  async *drain(batchKeys = 1024): AsyncGenerator<SortedKey[]> {
    this.records = 0;
    const mem = this.takeGrouped();
    if (this.runs.count === 0) {
      for (let i = 0; i < mem.length; i += batchKeys) yield mem.slice(i, i + batchKeys);
      return;
    }
    try {
      // Memory keys arrived after every run: each group's are appended to its spilled ones.
      const groups = [...new Set([...this.runs.groups(), ...mem.map((k) => k.keyGroup)])].sort((a, b) => a - b);
      let m = 0;
      let batch: SortedKey[] = [];
      for (const group of groups) {
        const start = m;
        while (m < mem.length && mem[m]!.keyGroup === group) m++;
        for await (const keys of this.runs.readGroup(group, mem.slice(start, m))) {
          for (const key of keys) {
            batch.push(key);
            if (batch.length >= batchKeys) {
              yield batch;
              batch = [];
            }
          }
        }
      }
      if (batch.length > 0) yield batch;
    } finally {
      void this.cleanup(); // nothing is being written once the drain began
    }
  }

  /** Removes the spilled runs; a promise while a run being written is still to be removed. */
  cleanup(): Promise<void> | undefined {
    this.diskBytes = 0;
    this.records = 0;
    return this.runs.cleanup();
  }

  private async spill(): Promise<void> {
    const run = this.takeLargestGroups(this.budget.memoryBytes * SPILL_SHARE);
    if (this.diskBytes + run.bytes > this.budget.diskBytes) {
      throw new WeirError(ErrorCode.Budget, `operator "${this.budget.operator}": the backlog does not fit the sort budget (memory ${mb(this.budget.memoryBytes)}, disk ${mb(this.budget.diskBytes)} in ${this.budget.directory}); raise backlogSort.diskBytes, or process the backlog without sorting (checkpointIntervalDuringBacklogMs > 0 or mode "streaming")`);
    }
    await this.runs.write(run.keys);
    this.diskBytes += run.bytes;
    this.spills++;
  }
}

function mb(n: number): string {
  return `${Math.round(n / (1024 * 1024))} MB`;
}
