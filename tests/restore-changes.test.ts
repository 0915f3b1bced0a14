// A job changed between a checkpoint and its restore, as Flink users change them: another maxParallelism
// is refused in one line (keyed state would land in key groups no subtask owns: a restart loop), and
// state dropped with allowNonRestoredState stays dropped when an operator of that uid comes back (KV
// kept it and handed it back; the heap did not).
import { suite } from "uvu";
import * as assert from "uvu/assert";
import * as t from "io-ts";
import { Sources, StreamEnvironment, TumblingEventTimeWindows, valueState, WatermarkStrategy, type JobOptions } from "../mod.ts";
import { withServer } from "./helpers/nats-server.ts";
import { within } from "./helpers/cli.ts";

const s = suite("restore after a job change");
const nats = withServer(s);
const count = valueState("count", t.number);
const keys = Array.from({ length: 40 }, (_, i) => `k${i % 8}`);
let runs = 0;

/**
 * The keys counted per key (uid "counts"), or, when `withCounts` is false, mapped without state. Each run
 * reads the input again: a new source uid (the old one's position is dropped with allowNonRestoredState).
 */
async function run(name: string, options: Partial<JobOptions>, withCounts = true): Promise<number[]> {
  const env = StreamEnvironment.create({ name, nats: nats.url, checkpointIntervalMs: 100, mode: "streaming", parallelism: 2, allowNonRestoredState: true, ...options });
  try {
    const input = env.fromSource(Sources.array(keys), { uid: `keys-${runs++}` });
    const counted = withCounts
      ? input.keyBy((k) => k).process<number>({
        async processElement(_k, ctx) {
          const n = ((await ctx.state(count).value()) ?? 0) + 1;
          await ctx.state(count).update(n);
          ctx.collect(n);
        },
      }, { uid: "counts" })
      : input.map(() => 0, { uid: "zeros" });
    const out = await within(counted.executeAndCollect(), 60_000);
    if (out === undefined) throw new Error(`job ${name} did not end within 60 s`);
    return out;
  } finally {
    await env.close();
  }
}

s("a restore under another maxParallelism is refused in one line", async () => {
  await run("maxp", { maxParallelism: 4 });
  const err = await run("maxp", {}).then(() => "restored", (e: Error) => e.message);
  assert.match(err, /was taken with maxParallelism 4, and this job has 128: .*set maxParallelism back to 4/);
});

for (const stateBackend of ["jetstream-kv", "heap"] as const) {
  s(`state dropped with allowNonRestoredState stays dropped when its operator comes back (${stateBackend})`, async () => {
    const name = `nrs${stateBackend.length}`;
    assert.is(Math.max(...await run(name, { stateBackend })), 5, "each key counted 5 times");
    await run(name, { stateBackend }, false);
    assert.is(Math.max(...await run(name, { stateBackend })), 5, "counts start again: the dropped state is gone");
  });
}

s("a restore into the other state backend is refused in one line naming the backend to run", async () => {
  await run("backends", {});
  const err = await run("backends", { stateBackend: "heap" }).then(() => "restored", (e: Error) => e.message);
  assert.match(err, /^checkpoint \d+ was taken with the jetstream-kv state backend, and this job runs heap: .*\(--state-backend jetstream-kv\), or start without state/);
});

/** Sums of the keys' ids per tumbling window of `size` ms (uid "win"), the input read again as in run(). */
async function windowed(name: string, size: number): Promise<number[]> {
  const env = StreamEnvironment.create({ name, nats: nats.url, checkpointIntervalMs: 100, mode: "streaming", parallelism: 2, allowNonRestoredState: true });
  try {
    const input = env.fromSource(Sources.array(keys.map((k, i) => ({ k, ts: i * 100 }))), { uid: `keys-${runs++}`, watermarks: WatermarkStrategy.forMonotonousTimestamps((e: { k: string; ts: number }) => e.ts) });
    const sums = input.keyBy((e) => e.k).window(TumblingEventTimeWindows.of(size)).reduce((a, b) => ({ k: a.k, ts: a.ts + b.ts }), { uid: "win" }).map((e) => e.ts);
    return (await within(sums.executeAndCollect(), 60_000)) ?? [];
  } finally {
    await env.close();
  }
}

s("a restore under another window size is refused in one line: old windows would fire with the new bounds", async () => {
  assert.ok((await windowed("winsize", 1000)).length > 0);
  assert.ok((await windowed("winsize", 1000)).length > 0, "the same windows restore");
  const err = await windowed("winsize", 2000).then(() => "restored", (e: Error) => e.message);
  assert.match(err, /holds the windows of operator "win" as TumblingEventTimeWindows\.of\(1000\), and this job has TumblingEventTimeWindows\.of\(2000\): .*new uid/);
});

s("countWindow made smaller across a restore: keys already past the new size fire at their next record", async () => {
  const counted = async (size: number) => {
    const env = StreamEnvironment.create({ name: "countsize", nats: nats.url, checkpointIntervalMs: 100, mode: "streaming", parallelism: 2, allowNonRestoredState: true });
    try {
      const sizes = env.fromSource(Sources.array(keys), { uid: `keys-${runs++}` }).map((k) => [k]).keyBy((k) => k[0]!).countWindow(size).reduce((a, b) => [...a, ...b], { uid: "cw" }).map((w) => w.length);
      return (await within(sizes.executeAndCollect(), 60_000)) ?? [];
    } finally {
      await env.close();
    }
  };
  assert.equal(await counted(10), [], "5 records per key: no window of 10 is full");
  assert.equal((await counted(3)).sort((a, b) => b - a), Array(8).fill(6).concat(Array(8).fill(3)), "each key's 5 kept and its next fire as one window, then windows of 3");
});

s.run();
