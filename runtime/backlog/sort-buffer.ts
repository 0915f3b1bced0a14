// The backlog sort buffer of a keyed operator (FLIP-327): records are held in memory up to a budget; when
// the budget is exceeded, the buffer is sorted and written to local disk as a run; at the end, the runs
// and what is left in memory are merged. Sorted by key (key group, then key) keeping each key's arrival
// order, which is what makes replaying a key's records reproduce streaming results.

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
  /** In-memory bytes (estimated from the records' JSON size) before a run is spilled. */
  readonly memoryBytes: number;
  /** Total bytes of spilled runs allowed on disk. */
  readonly diskBytes: number;
  readonly directory: string;
  /** Names the operator in errors. */
  readonly operator: string;
}

export function compareRecords(a: BufferedRecord, b: BufferedRecord): number {
  return a.keyGroup - b.keyGroup || (a.keyId < b.keyId ? -1 : a.keyId > b.keyId ? 1 : 0) || a.seq - b.seq;
}

type Line = [number, string, number, number, number | null, number, unknown];
const toLine = (r: BufferedRecord): string => JSON.stringify([r.keyGroup, r.keyId, r.seq, r.watermark, r.timestamp ?? null, r.input, r.value] satisfies Line);
const fromLine = (s: string): BufferedRecord => {
  const [keyGroup, keyId, seq, watermark, timestamp, input, value] = JSON.parse(s) as Line;
  return { keyGroup, keyId, seq, watermark, timestamp: timestamp ?? undefined, input, value };
};

export class SortBuffer {
  private memory: BufferedRecord[] = [];
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
  add(r: Omit<BufferedRecord, "seq">, approxBytes: number): void | Promise<void> {
    this.memory.push({ ...r, seq: this.nextSeq++ });
    this.records++;
    this.memoryBytes += approxBytes + 64;
    if (this.memoryBytes >= this.budget.memoryBytes) return this.spill();
  }

  /** Every buffered record in sorted order; the buffer is empty afterwards. */
  async *drain(): AsyncGenerator<BufferedRecord> {
    this.memory.sort(compareRecords);
    const sources: Array<AsyncIterator<BufferedRecord>> = this.runs.map((path) => readRun(path));
    const mem = this.memory;
    this.memory = [];
    this.memoryBytes = 0;
    sources.push((async function* () { yield* mem; })());
    // k-way merge: a small heap over the head of each run.
    const heads: Array<{ r: BufferedRecord; i: number }> = [];
    for (let i = 0; i < sources.length; i++) {
      const n = await sources[i]!.next();
      if (!n.done) heads.push({ r: n.value, i });
    }
    heads.sort((a, b) => compareRecords(a.r, b.r));
    while (heads.length > 0) {
      const top = heads.shift()!;
      yield top.r;
      const n = await sources[top.i]!.next();
      if (!n.done) insertSorted(heads, { r: n.value, i: top.i });
    }
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
    const run = this.memory.sort(compareRecords);
    this.memory = [];
    const bytes = this.memoryBytes;
    this.memoryBytes = 0;
    if (this.diskBytes + bytes > this.budget.diskBytes) {
      throw new WeirError(ErrorCode.Budget, `operator "${this.budget.operator}": the backlog does not fit the sort budget (memory ${mb(this.budget.memoryBytes)}, disk ${mb(this.budget.diskBytes)} in ${this.budget.directory}); raise backlogSort.diskBytes or checkpointIntervalDuringBacklogMs > 0 to process the backlog without sorting`);
    }
    this.dir ??= mkdtempSync(join(this.budget.directory, "weir-sort-"));
    const path = join(this.dir, `run-${this.runs.length}.jsonl`);
    const out = createWriteStream(path);
    for (const r of run) if (!out.write(`${toLine(r)}\n`)) await once(out, "drain");
    await closeStream(out);
    this.runs.push(path);
    this.diskBytes += bytes;
    this.spills++;
  }
}

async function* readRun(path: string): AsyncGenerator<BufferedRecord> {
  const lines = createInterface({ input: createReadStream(path), crlfDelay: Infinity });
  for await (const line of lines) if (line) yield fromLine(line);
}

function insertSorted(heads: Array<{ r: BufferedRecord; i: number }>, item: { r: BufferedRecord; i: number }): void {
  let lo = 0;
  let hi = heads.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (compareRecords(heads[mid]!.r, item.r) <= 0) lo = mid + 1;
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
