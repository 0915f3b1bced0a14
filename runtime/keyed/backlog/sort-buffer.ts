// The backlog sort buffer of a keyed operator (FLIP-327): records are held in memory up to a budget; when
// the budget is exceeded, the largest key groups, a quarter of the budget's worth, are written to local
// disk as a run (spilled-runs.ts); at the end, the runs and what is left in memory are drained together.
// Each key's records come back together in arrival order, keys by key group, which is what makes
// replaying a key's records reproduce streaming results.
//
// In memory, keys and records are kept in columns as they arrived (buffered-keys.ts: no object per key or
// record, no serialization): a backlog that fits in memory is never encoded, and nothing is sorted (each
// key is listed under its key group when first seen). Their size is estimated from a sample of values
// (valueBytes). A reduce whose key's state is empty folds the key's records as they arrive (ArrivalFold): the
// buffer then holds one running value per key instead of every record, the same values in the same order
// as streaming would apply them.
import { ErrorCode, WeirError } from "../../core/errors.ts";
import { canonicalJson } from "../../../state/key-groups.ts";
import { BufferedKeys } from "./buffered-keys.ts";
import type { ArrivalFold, SortedKey } from "./sorted-key.ts";
import { SpilledRuns } from "./spilled-runs.ts";
import { StringKeyIndex } from "./short-key-table.ts";

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
  /** Batch mode: the whole input is sorted, and only mode "streaming" runs it unsorted (what the budget error offers). */
  readonly batch?: boolean;
}

// The memory estimate, from measured heap growth (keys of 10k and 250k, 500k records: small objects,
// objects with a 50-character string, strings, numbers, with and without timestamps): a value in V8's heap
// weighs about 2.7 times its JSON text (a { k, v } object with its key string ~65 bytes for 24 of JSON),
// a number 8 bytes (none in an array V8 keeps unboxed or for a small integer, 16 boxed). Within ~12% of
// the heap for objects, strings and timestamped records; numbers up to ~1.5x what they take.
const VALUE_BYTES_PER_JSON_BYTE = 2.7;
const NUMBER_BYTES = 8;
/** Estimated bytes per buffered record besides its value: its slots in the columns (buffered-keys.ts). */
const RECORD_OVERHEAD = 16;
/** A record's arrival watermark, timestamp and input, once the buffer keeps them. */
const RECORD_META = 28;
/**
 * Estimated bytes per buffered key besides its key string: its lookup entry, slots and key group list (a
 * short key's row, 28 bytes at most half full, is ~40 bytes more than a Map entry: short-key-table.ts).
 */
const KEY_OVERHEAD = 136;

/** A sampled value's estimated heap bytes (see above). */
function valueBytes(value: unknown): number {
  return typeof value === "number" ? NUMBER_BYTES : VALUE_BYTES_PER_JSON_BYTE * (JSON.stringify(value)?.length ?? 8);
}
/**
 * One value in SAMPLE_EVERY is measured (valueBytes) to estimate the rest, one in SAMPLE_EVERY_LATER after
 * the first SAMPLED_FIRST records (a value's JSON ~0.5 µs: one in 16 over 1M records was 35 ms of a 2 s
 * sorted reduce). The estimate is the mean of the samples of about the last ESTIMATE_RECORDS records, so it
 * follows values that grow later: the mean of all samples so far, as before, counted a backlog whose second
 * 100k records were 100 times larger at a third of what they weigh.
 */
const SAMPLE_EVERY = 16;
const SAMPLE_EVERY_LATER = 64;
const SAMPLED_FIRST = 65_536;
const ESTIMATE_RECORDS = 16_384;
/**
 * A spill writes about this share of the budget: a backlog somewhat over the budget then sends little
 * more than its excess through the disk (half the budget per spill wrote ~64 of 88 MB; a quarter, ~32 MB:
 * the 1M-record, 500k-key sorted run ~0.95x wall), at the cost of twice as many, smaller runs.
 */
const SPILL_SHARE = 0.25;

export class SortBuffer {
  /** The buffered keys and their records, by key slot. */
  private keys: BufferedKeys;
  /**
   * Each key's slot. String keys are looked up by themselves (no canonical JSON per record: most keys are
   * strings; short ones in a table of their characters, short-key-table.ts), other keys by their canonical
   * JSON; two indexes, so that "1" and 1 stay apart.
   */
  private byString = new StringKeyIndex();
  private byJson = new Map<string, number>();
  /** The same keys' slots by key group (in order of first arrival): a spill takes whole groups without a scan. */
  private groups: Array<number[] | undefined> = [];
  /** Per key group: its records, and its keys' bytes besides their records (a spill's size estimate). */
  private groupRecords: number[] = [];
  private groupKeyBytes: number[] = [];
  private memoryBytes = 0;
  private readonly runs: SpilledRuns;
  private diskBytes = 0;
  /** A value's estimated bytes (see ESTIMATE_RECORDS). */
  private valueEstimate = 0;
  /** The records the samples stand for, and the records until the next sample (the first record is one). */
  private sampledRecords = 0;
  private untilSample = 1;
  records = 0;
  spills = 0;

  /** `watermark`: the watermark when buffering starts (most records arrive under it). */
  constructor(private readonly budget: SortBudget, private readonly watermark = Number.NEGATIVE_INFINITY, private readonly arrivalFold?: ArrivalFold) {
    // A key group's spilled text becomes objects of about three times its size when read back.
    this.runs = new SpilledRuns(budget.directory, watermark, budget.memoryBytes / 4);
    this.keys = new BufferedKeys(watermark);
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
    let k: number | undefined;
    if (typeof key === "string") {
      k = this.byString.get(key);
      if (k < 0) k = this.newKey(key, true, key, keyGroupOf);
    } else {
      const keyId = canonicalJson(key);
      k = this.byJson.get(keyId) ?? this.newKey(keyId, false, key, keyGroupOf);
    }
    const keys = this.keys;
    if (keys.folding(k)) keys.fold(k, value, this.arrivalFold!, key, watermark, timestamp, input);
    else keys.push(k, value, watermark, timestamp, input);
    this.groupRecords[keys.keyGroup(k)]!++;
    // A folded record is accounted as if it were kept: spills come at the same points, and a fold that
    // grows its value (a concatenation) is still bounded.
    if (--this.untilSample === 0) this.sample(value);
    this.records++;
    this.memoryBytes += this.recordBytes();
    if (this.memoryBytes >= this.budget.memoryBytes) return this.spill();
  }

  /**
   * Measures `value`, which stands for the records up to the next sample: the estimate is the mean of the
   * first samples, then an exponential mean over about ESTIMATE_RECORDS records.
   */
  private sample(value: unknown): void {
    const every = this.sampledRecords < SAMPLED_FIRST ? SAMPLE_EVERY : SAMPLE_EVERY_LATER;
    const weight = every / Math.min(this.sampledRecords + every, ESTIMATE_RECORDS);
    this.valueEstimate += weight * (valueBytes(value) - this.valueEstimate);
    this.sampledRecords += every;
    this.untilSample = this.sampledRecords < SAMPLED_FIRST ? SAMPLE_EVERY : SAMPLE_EVERY_LATER;
  }

  /** The estimated bytes of a buffered record (as the values sampled so far weigh). */
  private recordBytes(): number {
    const value = this.valueEstimate;
    return RECORD_OVERHEAD + (this.keys.keepsMetadata ? RECORD_META : 0) + value;
  }

  /** `mapKey`: the key itself when a string (`stringKey`), else its canonical JSON. */
  private newKey(mapKey: string, stringKey: boolean, key: unknown, keyGroupOf: KeyGroupOf): number {
    const keyGroup = keyGroupOf(key);
    const folding = this.arrivalFold !== undefined && this.spills === 0 && this.arrivalFold.canFold(key, keyGroup, stringKey ? canonicalJson(key) : mapKey);
    const k = this.keys.newKey(mapKey, stringKey, keyGroup, folding);
    if (stringKey) this.byString.set(mapKey, k);
    else this.byJson.set(mapKey, k);
    const keyBytes = KEY_OVERHEAD + 2 * mapKey.length;
    this.memoryBytes += keyBytes;
    const group = this.groups[keyGroup];
    if (group === undefined) {
      this.groups[keyGroup] = [k];
      this.groupRecords[keyGroup] = 0;
      this.groupKeyBytes[keyGroup] = keyBytes;
    } else {
      group.push(k);
      this.groupKeyBytes[keyGroup]! += keyBytes;
    }
    return k;
  }

  /** Key `k` taken out of the buffer with its records (its slots freed, its map entry deleted). */
  private take(k: number): SortedKey {
    if (this.keys.isStringKey(k)) this.byString.delete(this.keys.mapKeyOf(k));
    else this.byJson.delete(this.keys.mapKeyOf(k));
    return this.keys.take(k);
  }

  /**
   * The in-memory keys' slots by key group (indexed by key group; within a group, in order of first
   * arrival) and the columns holding them; the buffer starts empty again. What a drain without spilled
   * runs needs: each key's records are already together, and the order of keys only matters for merging runs.
   */
  private takeGrouped(): { groups: Array<number[] | undefined>; keys: BufferedKeys } {
    const taken = { groups: this.groups, keys: this.keys };
    this.keys = new BufferedKeys(this.watermark);
    this.byString = new StringKeyIndex();
    this.byJson = new Map();
    this.groups = [];
    this.groupRecords = [];
    this.groupKeyBytes = [];
    this.memoryBytes = 0;
    return taken;
  }

  /**
   * The keys of the largest key groups, about `target` bytes of them, taken out of memory (by key group):
   * a spill writes only what makes room, so a backlog somewhat over the budget sends a part of its records
   * through the disk, not all of them. Each group's records stay in arrival order: a group's runs hold its
   * records up to each of its spills, and memory what came after its last one (what `drain` appends).
   */
  private takeLargestGroups(target: number): { keys: SortedKey[]; bytes: number } {
    const perRecord = this.recordBytes();
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
      for (const k of this.groups[group]!) keys.push(this.take(k));
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
    // A key is made a SortedKey (and its slots freed) only as its batch is drained.
    let batch: SortedKey[] = [];
    if (this.runs.count === 0) {
      for (const group of mem.groups) {
        if (group === undefined) continue;
        for (const k of group) {
          batch.push(mem.keys.take(k));
          if (batch.length >= batchKeys) {
            yield batch;
            batch = [];
          }
        }
      }
      if (batch.length > 0) yield batch;
      return;
    }
    try {
      // Memory keys arrived after every run: each group's are appended to its spilled ones.
      const inMemory: number[] = [];
      mem.groups.forEach((keys, group) => { if (keys !== undefined) inMemory.push(group); });
      const groups = [...new Set([...this.runs.groups(), ...inMemory])].sort((a, b) => a - b);
      for (const group of groups) {
        const later = (mem.groups[group] ?? []).map((k) => mem.keys.take(k));
        for await (const keys of this.runs.readGroup(group, later)) {
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
      throw new WeirError(ErrorCode.Budget, `operator "${this.budget.operator}": the backlog does not fit the sort budget (memory ${mb(this.budget.memoryBytes)}, disk ${mb(this.budget.diskBytes)} in ${this.budget.directory}); raise backlogSort.diskBytes, or ${this.budget.batch ? `run the job in mode "streaming" (batch mode sorts its whole input)` : `process the backlog without sorting (checkpointIntervalDuringBacklogMs > 0 or mode "streaming")`}`);
    }
    await this.runs.write(run.keys);
    this.diskBytes += run.bytes;
    this.spills++;
  }
}

function mb(n: number): string {
  return `${Math.round(n / (1024 * 1024))} MB`;
}
