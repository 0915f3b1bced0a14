// Generator and array sources restored at another parallelism (they refused to before): what their old
// subtasks had left is dealt out to the new ones, every index read once, each subtask in increasing
// index order; checkpoints written before splits ({ next }, { position }) restore too. Readers driven
// directly, then a job stopped with a savepoint at 2 and resumed at 3 and at 1.
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { Sources, StreamEnvironment, type SinkDef, type SourceDef, type SourceReader } from "../mod.ts";
import type { SourceContext } from "../runtime/contracts/connectors.ts";
import { withServer } from "./helpers/nats-server.ts";
import { finishOrStopWithSavepoint } from "./helpers/savepoint-runs.ts";

const s = suite("positional sources at another parallelism");
const nats = withServer(s);

/** What these sources read of a context: their subtask, parallelism, name and restored state. */
const ctxOf = (subtaskIndex: number, parallelism: number, restoredState?: unknown) =>
  ({ subtaskIndex, parallelism, operatorName: "src", restoredState }) as unknown as SourceContext;

/** Reads up to `max` records (all when undefined); the records and whether the reader ended. */
async function read<T>(reader: SourceReader<T>, max = Number.POSITIVE_INFINITY): Promise<{ values: T[]; ended: boolean }> {
  const values: T[] = [];
  while (values.length < max) {
    const batch = await reader.pollNext(Math.min(1000, max - values.length));
    if (batch === null) return { values, ended: true };
    values.push(...batch.values);
  }
  return { values, ended: false };
}

/** Runs `source` at `from` subtasks, each reading `first` records, checkpoints them, and restores the rest at `to`. */
async function rescaled<T>(source: SourceDef<T>, from: number, first: number, to: number): Promise<{ before: T[][]; after: T[][] }> {
  const before: T[][] = [];
  const states: unknown[] = [];
  for (let k = 0; k < from; k++) {
    const reader = await source.createReader(ctxOf(k, from));
    before.push((await read(reader, first)).values);
    states.push(reader.snapshotState?.(1));
  }
  const after: T[][] = [];
  for (let k = 0; k < to; k++) after.push((await read(await source.createReader(ctxOf(k, to, states)))).values);
  return { before, after };
}

const increasing = (xs: readonly number[]) => xs.every((x, i) => i === 0 || xs[i - 1]! < x);
const range = (n: number) => Array.from({ length: n }, (_, i) => i);
const sorted = (xs: readonly number[]) => [...xs].sort((a, b) => a - b);

for (const [from, to] of [[2, 3], [2, 1], [3, 2], [1, 4], [4, 4]] as const) {
  s(`generator (count 1000) checkpointed at ${from}, restored at ${to}: every i once, each subtask in order`, async () => {
    const { before, after } = await rescaled(Sources.generator({ count: 1000, make: (i) => i }), from, 120, to);
    assert.equal(sorted([...before.flat(), ...after.flat()]), range(1000));
    for (const xs of after) assert.ok(increasing(xs), `a subtask's indexes in increasing order: ${xs.slice(0, 10).join(", ")}...`);
    const shares = after.map((xs) => xs.length);
    assert.ok(Math.max(...shares) - Math.min(...shares) <= 5, `the new subtasks' shares are even: ${shares.join(", ")}`);
  });
}

s("array checkpointed at 2, restored at 1: the rest in the array's order", async () => {
  const items = range(500).map((i) => `item-${i}`);
  const { before, after } = await rescaled(Sources.array(items), 2, 100, 1);
  assert.equal([...before.flat(), ...after[0]!].sort(), [...items].sort());
  assert.equal(after[0], items.filter((x) => !before.flat().includes(x)), "in the array's order");
});

s("an unbounded generator checkpointed at 2, restored at 3: each subtask goes on with a share, no i twice", async () => {
  const gen = Sources.generator({ make: (i) => i });
  const { before, after } = await rescaled({ ...gen, createReader: async (ctx) => {
    // Unbounded: each reader stops after 300 records here.
    const reader = await gen.createReader(ctx);
    let n = 0;
    return { ...reader, pollNext: async (max?: number) => (n >= 300 ? null : reader.pollNext(Math.min(max ?? 1000, 300 - n)).then((b) => { n += b?.values.length ?? 0; return b; })) };
  } }, 2, 300, 3);
  const all = [...before.flat(), ...after.flat()];
  assert.is(new Set(all).size, all.length, "no index twice");
  assert.ok(after.every((xs) => xs.length === 300 && increasing(xs)));
  assert.ok(after.flat().every((i) => i >= 300), "nothing read before the checkpoint is read again");
});

s("checkpoints from before splits restore at another parallelism: generator { next }, array { position }", async () => {
  // Generator at 2: subtask 0 had made 0, 2 (next 4), subtask 1 had made 1, 3, 5 (next 7).
  const gen = await read(await Sources.generator({ count: 12, make: (i) => i }).createReader(ctxOf(0, 1, [{ next: 4 }, { next: 7 }])));
  assert.equal(gen.values, [4, 6, 7, 8, 9, 10, 11]);
  // Array at 2: subtask 0 had read items 0, 2, 4 (position 3), subtask 1 item 1 (position 1).
  const items = range(10);
  const parts = await Promise.all([0, 1, 2].map(async (k) => (await read(await Sources.array(items).createReader(ctxOf(k, 3, [{ position: 3 }, { position: 1 }])))).values));
  assert.equal(sorted(parts.flat()), [3, 5, 6, 7, 8, 9]);
});

for (const [from, to] of [[2, 2], [2, 3], [3, 1]] as const) {
  s(`a generator read to its end (count 100) at ${from}, restored with count 250 at ${to}: indexes 100 to 249, once each`, async () => {
    const states: unknown[] = [];
    const before: number[] = [];
    for (let k = 0; k < from; k++) {
      const reader = await Sources.generator({ count: 100, make: (i) => i }).createReader(ctxOf(k, from));
      const r = await read(reader);
      assert.ok(r.ended);
      before.push(...r.values);
      states.push(reader.snapshotState?.(1));
    }
    assert.equal(sorted(before), range(100));
    const after: number[][] = [];
    for (let k = 0; k < to; k++) after.push((await read(await Sources.generator({ count: 250, make: (i) => i }).createReader(ctxOf(k, to, states)))).values);
    assert.equal(sorted(after.flat()), range(150).map((i) => 100 + i), "the indexes the larger count added, none before");
    for (const xs of after) assert.ok(increasing(xs));
  });
}

s("an array read to its end, restored over a longer array: only the new items", async () => {
  const reader = await Sources.array(["a", "b", "c"]).createReader(ctxOf(0, 1));
  assert.equal((await read(reader)).values, ["a", "b", "c"]);
  const state = reader.snapshotState?.(1);
  assert.equal((await read(await Sources.array(["a", "b", "c", "d", "e"]).createReader(ctxOf(0, 1, state)))).values, ["d", "e"]);
  assert.equal((await read(await Sources.array(["a", "b", "c"]).createReader(ctxOf(0, 1, state)))).values, [], "the same array: nothing again");
});

s("a restored state that is not the source's is refused with its name", async () => {
  try {
    await Sources.generator({ count: 10, make: (i) => i }).createReader(ctxOf(0, 2, [{ offset: 3 }]));
    assert.unreachable("accepted");
  } catch (e) {
    assert.match((e as Error).message, /Sources\.generator \(src\): restored state \{"offset":3\} is not this source's/);
  }
});

// The hybrid: both parts generators; every stop falls within its history, read by all subtasks alike
// (a hybrid checkpointed while its subtasks were in different parts restores only at that parallelism).
const jobSources = {
  generator: () => Sources.generator({ count: 6000, ratePerSec: 3000, make: (i) => i }),
  "hybrid of two generators": () => Sources.hybrid(Sources.generator({ count: 4000, ratePerSec: 3000, make: (i) => i }), Sources.generator({ count: 2000, make: (i) => 4000 + i })),
};
/**
 * One run of job `name` (source `gen` into a sink appending to `out`, checkpoints every 200 ms) at
 * `parallelism`: to its end, or stopped with a savepoint after `stopAfter` records.
 */
async function runJob(name: string, source: SourceDef<number>, parallelism: number, out: number[], stopAfter?: number): Promise<void> {
  const sink: SinkDef<number> = { kind: "test-collect", createWriter: async () => ({ write: (x) => { out.push(x); }, flush: async () => {}, close: async () => {} }) };
  const env = StreamEnvironment.create({ name, nats: nats.url, parallelism, checkpointIntervalMs: 200, stateBackend: "heap" }, { log: () => {} });
  try {
    env.fromSource(source, { uid: "gen" }).sinkTo(sink, { uid: "out" });
    await finishOrStopWithSavepoint(await env.executeAsync(), stopAfter);
  } finally {
    await env.close();
  }
}

for (const [kind, source] of Object.entries(jobSources)) {
  s(`a job with a ${kind} stopped with a savepoint at 2, resumed at 3, then run to its end at 1: every record once`, async () => {
    const out: number[] = [];
    const run = (parallelism: number, stopAfter?: number) => runJob(`rescale-${kind.length}`, source(), parallelism, out, stopAfter);
    await run(2, 1500);
    const first = out.length;
    await run(3, 1500);
    assert.ok(out.length > first, "the run at 3 read on");
    await run(1);
    assert.equal(sorted(out), range(6000), "every record once");
  });
}

s("a bounded job run to its end, run again with a higher count at another parallelism: it goes on from where it ended", async () => {
  const out: number[] = [];
  const run = (parallelism: number, count: number) => runJob("grown-count", Sources.generator({ count, make: (i) => i }), parallelism, out);
  await run(2, 3000);
  assert.equal(sorted(out), range(3000));
  out.length = 0;
  await run(3, 5000);
  assert.equal(sorted(out), range(2000).map((i) => 3000 + i), "the 2,000 new records, none of the first run's");
});

s.run();
