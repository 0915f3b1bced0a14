// The backlog sort buffer of a keyed operator (FLIP-327): records are held in memory up to a budget; when
// the budget is exceeded, the buffer is sorted and written to local disk as a run; at the end, the runs
// and what is left in memory are merged. Sorted by key (key group, then key) keeping each key's arrival
// order, which is what makes replaying a key's records reproduce streaming results.
//
// Each record is held as one string: a sort prefix (key group as 4 hex digits, the key's canonical JSON,
// the arrival number in fixed-width base 36) and the rest as JSON. Strings keep memory close to the
// budget (objects cost several times their JSON in V8), sort with the engine's native string order (no
// comparator callback per comparison), and are already what a run file holds.

import { createReadStream, createWriteStream, mkdtempSync, rmSync, type WriteStream } from "node:fs";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { once } from "node:events";
import { ErrorCode, WeirError } from "../errors.ts";

/** One buffered record: sort key, arrival order, the watermark when it arrived, timestamp, value. */
export interface BufferedRecord {
  readonly keyGroup: number;
  readonly keyId: string;
  readonly seq: number;
  readonly watermark: number;
  readonly timestamp: number | undefined;
  readonly input: number;
  readonly value: unknown;
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

// Canonical JSON escapes control characters, so these never occur inside a key.
const KEY_END = "\u0001";
const SEQ_END = "\u0002";
const SEQ_WIDTH = 9;

function encode(r: Omit<BufferedRecord, "seq">, seq: number): string {
  const group = r.keyGroup.toString(16).padStart(4, "0");
  return `${group}${r.keyId}${KEY_END}${seq.toString(36).padStart(SEQ_WIDTH, "0")}${SEQ_END}${JSON.stringify([r.watermark, r.timestamp ?? null, r.input, r.value])}`;
}

function decode(line: string): BufferedRecord {
  const keyEnd = line.indexOf(KEY_END, 4);
  const seqEnd = keyEnd + 1 + SEQ_WIDTH;
  const [watermark, timestamp, input, value] = JSON.parse(line.slice(seqEnd + 1)) as [number, number | null, number, unknown];
  return {
    keyGroup: parseInt(line.slice(0, 4), 16),
    keyId: line.slice(4, keyEnd),
    seq: parseInt(line.slice(keyEnd + 1, seqEnd), 36),
    watermark,
    timestamp: timestamp ?? undefined,
    input,
    value,
  };
}

/** Orders records as the buffer does (for tests and merges of decoded records). */
export function compareRecords(a: BufferedRecord, b: BufferedRecord): number {
  return a.keyGroup - b.keyGroup || (a.keyId < b.keyId ? -1 : a.keyId > b.keyId ? 1 : 0) || a.seq - b.seq;
}

export class SortBuffer {
  /** In memory, lines are bucketed by key (insertion keeps arrival order): only distinct keys get sorted. */
  private buckets = new Map<string, string[]>();
  private memoryBytes = 0;
  private readonly runs: string[] = [];
  private diskBytes = 0;
  private dir: string | undefined;
  private nextSeq = 0;
  records = 0;
  spills = 0;

  constructor(private readonly budget: SortBudget) {}

  get size(): number { return this.records; }
  get spilledBytes(): number { return this.diskBytes; }
  get bufferedBytes(): number { return this.memoryBytes; }

  /** Adds a record; spills the memory buffer as a sorted run when over budget (the caller awaits that). */
  add(r: Omit<BufferedRecord, "seq">): void | Promise<void> {
    const line = encode(r, this.nextSeq++);
    const sortKey = line.slice(0, line.indexOf(KEY_END, 4));
    const bucket = this.buckets.get(sortKey);
    if (bucket) bucket.push(line);
    else {
      this.buckets.set(sortKey, [line]);
      this.memoryBytes += sortKey.length + 80;
    }
    this.records++;
    this.memoryBytes += line.length + 24;
    if (this.memoryBytes >= this.budget.memoryBytes) return this.spill();
  }

  /** The in-memory lines in sorted order (keys sorted, each key's lines in arrival order); empties memory. */
  private takeSorted(): string[] {
    const keys = [...this.buckets.keys()].sort();
    const out: string[] = [];
    for (const k of keys) for (const line of this.buckets.get(k)!) out.push(line);
    this.buckets = new Map();
    this.memoryBytes = 0;
    return out;
  }

  /** Every buffered record in sorted order, in batches; the buffer is empty afterwards. */
  async *drain(batchSize = 1024): AsyncGenerator<BufferedRecord[]> {
    const mem = this.takeSorted();
    if (this.runs.length === 0) {
      this.records = 0;
      for (let i = 0; i < mem.length; i += batchSize) yield mem.slice(i, i + batchSize).map(decode);
      return;
    }
    // k-way merge of the runs and the memory buffer, by the lines' native string order.
    const sources: Array<AsyncIterator<string> | Iterator<string>> = [...this.runs.map(readRun), mem[Symbol.iterator]()];
    const heads: Array<{ line: string; i: number }> = [];
    for (let i = 0; i < sources.length; i++) {
      const n = await sources[i]!.next();
      if (!n.done) heads.push({ line: n.value, i });
    }
    heads.sort((a, b) => (a.line < b.line ? -1 : 1));
    let batch: BufferedRecord[] = [];
    while (heads.length > 0) {
      const top = heads.shift()!;
      batch.push(decode(top.line));
      if (batch.length >= batchSize) {
        yield batch;
        batch = [];
      }
      const n = await sources[top.i]!.next();
      if (!n.done) insertSorted(heads, { line: n.value, i: top.i });
    }
    if (batch.length) yield batch;
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
    for (const line of run) if (!out.write(`${line}\n`)) await once(out, "drain");
    await closeStream(out);
    this.runs.push(path);
    this.diskBytes += bytes;
    this.spills++;
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
