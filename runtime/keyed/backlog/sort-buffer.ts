// The backlog sort buffer of a keyed operator (FLIP-327): records are held in memory up to a budget; when
// the budget is exceeded, they are sorted and written to local disk as a run; at the end, the runs and
// what is left in memory are merged. Sorted by key (key group, then key) keeping each key's arrival
// order, which is what makes replaying a key's records reproduce streaming results.
//
// In memory, records are kept as they arrived, bucketed per key in parallel arrays (no per-record
// object, no serialization): only distinct keys get sorted, and a backlog that fits in memory is never
// encoded. Their size is estimated from the JSON length of a sample of values. A reduce whose key's state
// is empty folds the key's records as they arrive (ArrivalFold): the buffer then holds one running value
// per key instead of every record, the same values in the same order as streaming would apply them.
// A spilled run is lines:
// a sort prefix (key group as 4 hex digits, the key's canonical JSON, the arrival number in fixed-width
// base 36) and the rest as JSON, merged by the engine's native string order.
import { createReadStream, createWriteStream, mkdtempSync, rmSync, type WriteStream } from "node:fs";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { once } from "node:events";
import { ErrorCode, WeirError } from "../../core/errors.ts";
import { canonicalJson } from "../../../state/key-groups.ts";

/** The key group of a key seen for the first time (the operator checks it is in its range there). */
export type KeyGroupOf = (key: unknown) => number;

/**
 * Folding on arrival (a reduce): `fold(acc, value)` is the function a key's records would be applied with
 * one after another; `canFold` says whether a key seen for the first time starts from empty state that
 * nothing else changes before the drain. Only until the first spill: a key's running value must never be
 * combined with another one (that would need the function to be associative), so after a spill a key's
 * records are kept as they come, after at most one folded value.
 */
export interface ArrivalFold {
  canFold(key: unknown, keyGroup: number, keyId: string): boolean;
  fold(acc: unknown, value: unknown, key: unknown): unknown;
}

/**
 * One key's buffered records in arrival order: their values, and (3 numbers per record) the arrival
 * watermark, timestamp (NaN: none) and input, kept only once a record of the key differs from the
 * defaults (the buffer's starting watermark, no timestamp, input 0): a plain backlog costs one slot per record.
 */
export class SortedKey {
  readonly values: unknown[] = [];
  private meta: number[] | undefined;
  /** Records this key holds: more than its values when records were folded on arrival. */
  count = 0;
  /** Records are folded into values[0] as they arrive (see ArrivalFold). */
  folding = false;

  constructor(readonly keyGroup: number, readonly keyId: string, private readonly defaultWatermark: number) {}

  get size(): number { return this.values.length; }

  push(value: unknown, watermark: number, timestamp: number | undefined, input: number, records = 1): void {
    this.count += records;
    const meta = this.meta;
    if (meta !== undefined) meta.push(watermark, timestamp ?? Number.NaN, input);
    else if (watermark !== this.defaultWatermark || timestamp !== undefined || input !== 0) {
      const m: number[] = [];
      for (let i = 0; i < this.values.length; i++) m.push(this.defaultWatermark, Number.NaN, 0);
      m.push(watermark, timestamp ?? Number.NaN, input);
      this.meta = m;
    }
    this.values.push(value);
  }

  /** Folds a record into the key's one value; only the last record's metadata is kept (what a folded key reports). */
  fold(value: unknown, fold: ArrivalFold, key: unknown, watermark: number, timestamp: number | undefined, input: number): void {
    const acc = this.values[0];
    this.values[0] = acc === undefined ? value : fold.fold(acc, value, key);
    this.meta = watermark !== this.defaultWatermark || timestamp !== undefined || input !== 0 ? [watermark, timestamp ?? Number.NaN, input] : undefined;
    this.count++;
  }

  watermark(i: number): number { return this.meta === undefined ? this.defaultWatermark : this.meta[3 * i]!; }
  timestamp(i: number): number | undefined {
    const t = this.meta === undefined ? Number.NaN : this.meta[3 * i + 1]!;
    return Number.isNaN(t) ? undefined : t;
  }
  input(i: number): number { return this.meta === undefined ? 0 : this.meta[3 * i + 2]!; }
}

export interface SortBudget {
  /** In-memory bytes before a run is spilled. */
  readonly memoryBytes: number;
  /** Total bytes of spilled runs allowed on disk. */
  readonly diskBytes: number;
  readonly directory: string;
  /** Names the operator in errors. */
  readonly operator: string;
}

// Canonical JSON escapes control characters, so these never occur inside a key: a bucket's sort key
// (group + key) orders exactly as the run lines that start with it.
const KEY_END = "\u0001";
const SEQ_END = "\u0002";
const SEQ_WIDTH = 9;
/** Estimated bytes per buffered record besides its value (array slots, a bucket's share). */
const RECORD_OVERHEAD = 40;
const BUCKET_OVERHEAD = 200;
/** One value in this many is measured (JSON length) to estimate the rest. */
const SAMPLE_EVERY = 16;

const sortKeyOf = (keyGroup: number, keyId: string) => `${keyGroup.toString(16).padStart(4, "0")}${keyId}`;
/** The order of sortKeyOf's strings, without building them. */
const compareKeys = (a: SortedKey, b: SortedKey) => a.keyGroup - b.keyGroup || (a.keyId < b.keyId ? -1 : a.keyId > b.keyId ? 1 : 0);

function encodeLine(sortKey: string, seq: number, watermark: number, timestamp: number | undefined, input: number, value: unknown, records: number): string {
  // JSON has no infinities: the initial watermark (-Infinity) is written as a string.
  const w = Number.isFinite(watermark) ? watermark : String(watermark);
  const fields = records === 1 ? [w, timestamp ?? null, input, value] : [w, timestamp ?? null, input, value, records];
  return `${sortKey}${KEY_END}${seq.toString(36).padStart(SEQ_WIDTH, "0")}${SEQ_END}${JSON.stringify(fields)}`;
}

export class SortBuffer {
  /**
   * Per key (a key belongs to one key group), sorted by (key group, key) only when drained or spilled.
   * String keys are looked up by themselves (no canonical JSON per record: most keys are strings), other
   * keys by their canonical JSON; two maps, so that "1" and 1 stay apart.
   */
  private byString = new Map<string, SortedKey>();
  private byJson = new Map<string, SortedKey>();
  private memoryBytes = 0;
  private readonly runs: string[] = [];
  private diskBytes = 0;
  private dir: string | undefined;
  /** Arrival number of the next spilled line: orders a key's records across runs (runs spill in arrival order). */
  private lineSeq = 0;
  private sampledBytes = 0;
  private samples = 0;
  records = 0;
  spills = 0;

  /** `watermark`: the watermark when buffering starts (most records arrive under it). */
  constructor(private readonly budget: SortBudget, private readonly watermark = Number.NEGATIVE_INFINITY, private readonly arrivalFold?: ArrivalFold) {}

  get size(): number { return this.records; }

  /**
   * Adds a record of `key`, with the watermark when it arrived (its timers fire before it when the backlog
   * is replayed); `keyGroupOf` places a key seen for the first time. Spills the memory buffer as a sorted
   * run when over budget (the caller awaits that).
   */
  add(key: unknown, keyGroupOf: KeyGroupOf, watermark: number, timestamp: number | undefined, input: number, value: unknown): void | Promise<void> {
    const bucket = typeof key === "string" ? (this.byString.get(key) ?? this.newBucket(this.byString, key, key, keyGroupOf)) : this.bucketByJson(key, keyGroupOf);
    if (bucket.folding) bucket.fold(value, this.arrivalFold!, key, watermark, timestamp, input);
    else bucket.push(value, watermark, timestamp, input);
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
    const bucket = new SortedKey(keyGroup, keyId, this.watermark);
    bucket.folding = this.arrivalFold !== undefined && this.spills === 0 && this.arrivalFold.canFold(key, keyGroup, keyId);
    map.set(mapKey, bucket);
    this.memoryBytes += BUCKET_OVERHEAD + 2 * keyId.length;
    return bucket;
  }

  /** The in-memory keys in sorted order; empties memory. */
  private takeSorted(): SortedKey[] {
    const sorted = [...this.byString.values(), ...this.byJson.values()].sort(compareKeys);
    this.byString = new Map();
    this.byJson = new Map();
    this.memoryBytes = 0;
    return sorted;
  }

  /**
   * The in-memory keys by key group (a counting pass; within a group, in order of first arrival); empties
   * memory. What a drain without spilled runs needs: each key's records are already together, and the
   * order of keys only matters for merging runs (a full sort of 100k keys costs as much as draining a
   * tenth of them).
   */
  private takeGrouped(): SortedKey[] {
    const keys = [...this.byString.values(), ...this.byJson.values()];
    this.byString = new Map();
    this.byJson = new Map();
    this.memoryBytes = 0;
    let max = 0;
    for (const k of keys) if (k.keyGroup > max) max = k.keyGroup;
    const start = new Array<number>(max + 2).fill(0);
    for (const k of keys) start[k.keyGroup + 1]!++;
    for (let g = 1; g < start.length; g++) start[g]! += start[g - 1]!;
    const grouped = new Array<SortedKey>(keys.length);
    for (const k of keys) grouped[start[k.keyGroup]!++] = k;
    return grouped;
  }

  /**
   * Every buffered key with its records in arrival order, in batches of about `batchKeys` keys, by key
   * group (and by key when runs were spilled); the buffer is empty afterwards.
   */
  async *drain(batchKeys = 1024): AsyncGenerator<SortedKey[]> {
    this.records = 0;
    if (this.runs.length === 0) {
      const mem = this.takeGrouped();
      for (let i = 0; i < mem.length; i += batchKeys) yield mem.slice(i, i + batchKeys);
      return;
    }
    const mem = this.takeSorted();
    // k-way merge of the runs and the memory buffer (as lines), by the lines' native string order; a
    // key's records are contiguous in it, in arrival order.
    const sources: Array<AsyncIterator<string> | Iterator<string>> = [...this.runs.map(readRun), this.lines(mem)];
    const heads: Array<{ line: string; i: number }> = [];
    for (let i = 0; i < sources.length; i++) {
      const n = await sources[i]!.next();
      if (!n.done) heads.push({ line: n.value, i });
    }
    heads.sort((a, b) => (a.line < b.line ? -1 : 1));
    let batch: SortedKey[] = [];
    let current: SortedKey | undefined;
    while (heads.length > 0) {
      const top = heads.shift()!;
      const line = top.line;
      const keyEnd = line.indexOf(KEY_END, 4);
      const keyId = line.slice(4, keyEnd);
      if (current === undefined || current.keyId !== keyId) {
        if (batch.length >= batchKeys) {
          yield batch;
          batch = [];
        }
        current = new SortedKey(parseInt(line.slice(0, 4), 16), keyId, this.watermark);
        batch.push(current);
      }
      const [watermark, timestamp, input, value, records] = JSON.parse(line.slice(keyEnd + 2 + SEQ_WIDTH)) as [number | string, number | null, number, unknown, number?];
      current.push(value, Number(watermark), timestamp ?? undefined, input, records ?? 1);
      const n = await sources[top.i]!.next();
      if (!n.done) insertSorted(heads, { line: n.value, i: top.i });
    }
    if (batch.length > 0) yield batch;
    this.cleanup();
  }

  cleanup(): void {
    if (this.dir) rmSync(this.dir, { recursive: true, force: true });
    this.dir = undefined;
    this.runs.length = 0;
    this.diskBytes = 0;
    this.records = 0;
  }

  private async spill(): Promise<void> {
    const bytes = this.memoryBytes;
    const run = this.takeSorted();
    if (this.diskBytes + bytes > this.budget.diskBytes) {
      throw new WeirError(ErrorCode.Budget, `operator "${this.budget.operator}": the backlog does not fit the sort budget (memory ${mb(this.budget.memoryBytes)}, disk ${mb(this.budget.diskBytes)} in ${this.budget.directory}); raise backlogSort.diskBytes, or process the backlog without sorting (checkpointIntervalDuringBacklogMs > 0 or mode "streaming")`);
    }
    this.dir ??= mkdtempSync(join(this.budget.directory, "weir-sort-"));
    const path = join(this.dir, `run-${this.runs.length}.txt`);
    const out = createWriteStream(path);
    for (const line of this.lines(run)) if (!out.write(`${line}\n`)) await once(out, "drain");
    await closeStream(out);
    this.runs.push(path);
    this.diskBytes += bytes;
    this.spills++;
  }

  /** Sorted keys as run lines, numbered on from the previous run. */
  private *lines(sorted: SortedKey[]): Generator<string> {
    for (const b of sorted) {
      const sortKey = sortKeyOf(b.keyGroup, b.keyId);
      for (let i = 0; i < b.size; i++) yield encodeLine(sortKey, this.lineSeq++, b.watermark(i), b.timestamp(i), b.input(i), b.values[i], b.folding ? b.count : 1);
    }
  }
}


async function* readRun(path: string): AsyncGenerator<string> {
  const lines = createInterface({ input: createReadStream(path), crlfDelay: Infinity });
  for await (const line of lines) if (line) yield line;
}

function insertSorted(heads: Array<{ line: string; i: number }>, item: { line: string; i: number }): void {
  let lo = 0;
  let hi = heads.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (heads[mid]!.line <= item.line) lo = mid + 1;
    else hi = mid;
  }
  heads.splice(lo, 0, item);
}

function closeStream(s: WriteStream): Promise<void> {
  return new Promise((resolve, reject) => s.end((e?: Error | null) => (e ? reject(e) : resolve())));
}

function mb(n: number): string {
  return `${Math.round(n / (1024 * 1024))} MB`;
}
