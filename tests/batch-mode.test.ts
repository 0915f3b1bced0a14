// Batch execution mode (Flink's BATCH): on bounded, randomized input, batch results equal the final values
// of streaming mode, keyed reduce/aggregate emit one result per key, event-time timers fire at the end of
// each key's input; an unbounded source is refused; "automatic" runs an all-bounded job as batch.
import { suite } from "uvu";
import * as assert from "uvu/assert";
import * as t from "io-ts";
import {
  listState, mapState, SlidingEventTimeWindows, Sources, StreamEnvironment, TumblingEventTimeWindows, valueState, WatermarkStrategy,
  type DataStream, type JobOptions, type SourceDef,
} from "../mod.ts";
import { withServer } from "./helpers/nats-server.ts";
import { formatStatus } from "../runtime/cli/commands/control.ts";

const batch = suite("batch mode");
const nats = withServer(batch);

interface Event { k: string; v: number; ts: number }

/** `n` records over `keys` keys; timestamps out of order by less than the 500 ms watermark bound (no late records). */
function events(n: number, keys: number, seed: number): Event[] {
  let s = seed;
  const rand = () => ((s = (s * 1103515245 + 12345) & 0x7fffffff) / 0x7fffffff);
  return Array.from({ length: n }, (_, i) => ({ k: `k${Math.floor(rand() * keys)}`, v: Math.floor(rand() * 100) - 20, ts: 1_000_000 + i * 5 + Math.floor(rand() * 200) }));
}

type Mode = NonNullable<JobOptions["mode"]>;
let jobs = 0;

/** Runs `build` over `input` (timestamps and watermarks assigned) in `mode` and collects its output. */
async function run<O>(mode: Mode | undefined, input: Event[], build: (s: DataStream<Event>) => DataStream<O>, options: Partial<JobOptions> = {}): Promise<O[]> {
  const env = StreamEnvironment.create({ name: `batch${jobs++}`, nats: nats.url, parallelism: 2, stateBackend: "heap", ...(mode ? { mode } : {}), ...options });
  try {
    const src = env.fromSource(Sources.array(input) as SourceDef<Event>, { name: "events", watermarks: WatermarkStrategy.boundedOutOfOrderness<Event>(500, (e) => e.ts) });
    return await build(src).executeAndCollect();
  } finally {
    await env.close();
  }
}

const lastPerKey = <T>(out: T[], key: (o: T) => string): Map<string, T> => new Map(out.map((o) => [key(o), o]));
const sorted = (xs: string[]) => [...xs].sort();

batch("keyed reduce: batch emits each key's final value once (10 for 2,000 records over 10 keys), equal to streaming's last per key", async () => {
  for (const seed of [1, 2]) {
    const input = events(2000, 10, seed);
    const sum = (s: DataStream<Event>) => s.keyBy((e) => e.k).reduce((a, b) => ({ k: a.k, v: a.v + b.v, ts: Math.max(a.ts, b.ts) }));
    const inBatch = await run("batch", input, sum);
    const streamed = await run("streaming", input, sum);
    assert.is(streamed.length, 2000, "streaming emits a running value per record");
    assert.is(inBatch.length, 10, `seed ${seed}: one result per key in batch mode`);
    const expected = lastPerKey(streamed, (e) => e.k);
    assert.equal(lastPerKey(inBatch, (e) => e.k), expected, `seed ${seed}: batch results are streaming's final values`);
    const totals = new Map<string, number>();
    for (const e of input) totals.set(e.k, (totals.get(e.k) ?? 0) + e.v);
    for (const [k, e] of expected) assert.is(e.v, totals.get(k));
  }
});

batch("keyed aggregate: batch emits one final result per key, equal to streaming's last (KV backend)", async () => {
  const input = events(2000, 10, 7);
  const avg = (s: DataStream<Event>) => s.keyBy((e) => e.k).aggregate<{ k: string; n: number; sum: number }, string>({
    createAccumulator: () => ({ k: "", n: 0, sum: 0 }),
    add: (e, acc) => ({ k: e.k, n: acc.n + 1, sum: acc.sum + e.v }),
    getResult: (acc) => `${acc.k} n=${acc.n} sum=${acc.sum}`,
  });
  const inBatch = await run("batch", input, avg, { stateBackend: "jetstream-kv" });
  const streamed = await run("streaming", input, avg, { stateBackend: "jetstream-kv" });
  assert.is(streamed.length, 2000);
  assert.is(inBatch.length, 10);
  assert.equal(sorted(inBatch), sorted([...lastPerKey(streamed, (o) => o.split(" ")[0]!).values()]));
});

const sums = mapState("sums", t.number, t.number);
const seen = valueState("seen", t.number);

batch("process with event-time timers: per-key second totals fire at the end of each key's input in batch, equal to streaming", async () => {
  for (const seed of [3, 4]) {
    const input = events(2000, 10, seed);
    let watermarksSeen: number[] = [];
    const perSecond = (s: DataStream<Event>) => s.keyBy((e) => e.k).process<string>({
      async processElement(e, ctx) {
        watermarksSeen.push(ctx.currentWatermark());
        const second = Math.floor(e.ts / 1000);
        const m = ctx.state(sums);
        await m.put(second, ((await m.get(second)) ?? 0) + e.v);
        await ctx.state(seen).update(((await ctx.state(seen).value()) ?? 0) + 1);
        ctx.timers.registerEventTimeTimer(second * 1000 + 999);
      },
      async onTimer(ts, ctx) {
        const second = Math.floor(ts / 1000);
        const m = ctx.state(sums);
        ctx.collect(`${ctx.key} ${second} ${await m.get(second)}`);
        await m.remove(second);
      },
    });
    const inBatch = await run("batch", input, perSecond);
    const batchWatermarks = watermarksSeen;
    watermarksSeen = [];
    const streamed = await run("streaming", input, perSecond);
    assert.ok(streamed.length > 10, "several seconds per key");
    assert.equal(sorted(inBatch), sorted(streamed), `seed ${seed}: same timer outputs`);
    // Batch: a key's timers fire in timestamp order (keys run concurrently in the drain, so across keys
    // outputs may interleave, as they do across subtasks).
    const lastSecond = new Map<string, number>();
    for (const o of inBatch) {
      const [k, second] = o.split(" ");
      assert.ok(Number(second) > (lastSecond.get(k!) ?? -1), "a key's timers fire in timestamp order");
      lastSecond.set(k!, Number(second));
    }
    assert.ok(batchWatermarks.every((w) => w === Number.MIN_SAFE_INTEGER), "records see no watermark in batch mode (none is late)");
  }
});

batch("tumbling and sliding windows: batch emits each window's final result once, equal to streaming", async () => {
  const input = events(2000, 10, 11);
  const tumbling = (s: DataStream<Event>) => s.keyBy((e) => e.k).window(TumblingEventTimeWindows.of(1000))
    .aggregate<number, number>({ createAccumulator: () => 0, add: (e, acc) => acc + e.v, getResult: (acc) => acc })
    .map((v) => String(v));
  const sliding = (s: DataStream<Event>) => s.keyBy((e) => e.k).window(SlidingEventTimeWindows.of(2000, 500))
    .reduce((a, b) => ({ k: a.k, v: a.v + b.v, ts: Math.max(a.ts, b.ts) }))
    .map((e) => `${e.k} ${e.v}`);
  for (const [name, job] of [["tumbling", tumbling], ["sliding", sliding]] as const) {
    const inBatch = await run("batch", input, job);
    const streamed = await run("streaming", input, job);
    assert.ok(streamed.length > 20, `${name}: several windows`);
    assert.equal(sorted(inBatch), sorted(streamed), `${name}: same window results`);
  }
});

const balance = valueState("balance", t.number);

batch("connect / keyed co-process: batch equals streaming (a final balance per key at the end of input)", async () => {
  const input = events(2000, 10, 5);
  const coProcess = (s: DataStream<Event>) => {
    const credits = s.filter((e) => e.v >= 0);
    const debits = s.filter((e) => e.v < 0).map((e) => ({ account: e.k, amount: -e.v }));
    return credits.connect(debits).keyBy((e) => e.k, (d) => d.account).process<string>({
      async processElement1(e, ctx) {
        await ctx.state(balance).update(((await ctx.state(balance).value()) ?? 0) + e.v);
        ctx.timers.registerEventTimeTimer(4_000_000_000_000);
      },
      async processElement2(d, ctx) {
        await ctx.state(balance).update(((await ctx.state(balance).value()) ?? 0) - d.amount);
        ctx.timers.registerEventTimeTimer(4_000_000_000_000);
      },
      async onTimer(_ts, ctx) {
        ctx.collect(`${ctx.key} ${await ctx.state(balance).value()}`);
      },
    });
  };
  const inBatch = await run("batch", input, coProcess);
  const streamed = await run("streaming", input, coProcess);
  assert.is(inBatch.length, 10);
  assert.equal(sorted(inBatch), sorted(streamed));
});

batch("list state: update, add and addAll in batch equal streaming on both backends, and a get sees what was just added", async () => {
  const items = listState("items", t.number);
  const input = events(1500, 12, 11);
  const lists = (s: DataStream<Event>) => s.keyBy((e) => e.k).process<string>({
    async processElement(e, ctx) {
      const list = ctx.state(items);
      const before = (await list.get()) ?? [];
      // Each record adds the same whatever came before (batch runs a key's records in another order).
      const added = e.v % 3 === 0 ? [e.v, e.v + 1] : [e.v];
      if (before.length === 0) await list.update(added);
      else if (added.length === 2) await list.addAll(added);
      else await list.add(e.v);
      const after = (await list.get()) ?? [];
      if (after.length !== before.length + added.length || after[after.length - 1] !== added[added.length - 1]) ctx.collect(`${ctx.key} lost an add: ${before.length} then ${after.length}`);
      ctx.timers.registerEventTimeTimer(4_000_000_000_000);
    },
    async onTimer(_ts, ctx) {
      ctx.collect(`${ctx.key} ${((await ctx.state(items).get()) ?? []).sort((a, b) => a - b).join(",")}`);
    },
  });
  for (const stateBackend of ["heap", "jetstream-kv"] as const) {
    const inBatch = await run("batch", input, lists, { stateBackend });
    const streamed = await run("streaming", input, lists, { stateBackend });
    assert.is(inBatch.length, 12, `${stateBackend}: one list per key, no lost add: ${inBatch.filter((l) => l.includes("lost")).slice(0, 3).join("; ")}`);
    assert.equal(sorted(inBatch), sorted(streamed), stateBackend);
  }
});

batch("mode \"automatic\" runs a job whose sources are all bounded as batch (checkpoints asked for keep the mixed mode)", async () => {
  const input = events(2000, 10, 9);
  const sum = (s: DataStream<Event>) => s.keyBy((e) => e.k).reduce((a, b) => ({ ...a, v: a.v + b.v }));
  assert.is((await run(undefined, input, sum)).length, 10, "the default mode (automatic), all sources bounded");
  assert.is((await run("automatic", input, sum)).length, 10);
  assert.is((await run("automatic", input, sum, { checkpointIntervalMs: 60_000 })).length, 2000, "with checkpoints: not batch");
});

batch("mode \"batch\" refuses an unbounded source with one line naming it, and checkpoints", async () => {
  const refusal = async (source: SourceDef<unknown>, name: string): Promise<string | undefined> => {
    const env = StreamEnvironment.create({ name: "batchrefuse", nats: nats.url, mode: "batch" });
    try {
      await env.fromSource(source, { name }).executeAndCollect({ limit: 5 });
      return undefined;
    } catch (e) {
      return (e as Error).message;
    } finally {
      await env.close();
    }
  };
  assert.is(await refusal(Sources.generator({ make: (i) => i }), "ticks"), `mode "batch": source "ticks" (Sources.generator) is unbounded; give it an end (count) or use mode "streaming"`);
  assert.is(await refusal(Sources.jetstream({ stream: "EVENTS", subjects: ["events.>"] }), "events"), `mode "batch": source "events" (Sources.jetstream) is unbounded; give it an end (bounded: true) or use mode "streaming"`);
  assert.is(await refusal(Sources.generator({ count: 3, make: (i) => i }), "bounded"), undefined, "a bounded generator runs");
  assert.throws(() => StreamEnvironment.create({ name: "batchcp", mode: "batch", checkpointIntervalMs: 1000 }), /checkpointIntervalMs with mode "batch": batch jobs take no checkpoints/);
  const restoring = StreamEnvironment.create({ name: "batchrestore", nats: nats.url, mode: "batch", restore: 5 }, { log: () => {} });
  try {
    const error = await restoring.fromSource(Sources.generator({ count: 3, make: (i) => i })).executeAndCollect().then(() => undefined, (e: Error) => e.message);
    assert.is(error, `restoring checkpoint 5: this job runs in mode "batch", which takes no checkpoints and restores none (run it with --restore none, or in mode "streaming" with checkpointIntervalMs)`, "the way out offered is one batch mode accepts");
  } finally {
    await restoring.close();
  }
});

batch("a timer registered in onTimer fires before a later one already due, in batch as in streaming (Flink's timer order)", async () => {
  const events = [{ k: "a", v: 0, ts: 1000 }, { k: "a", v: 0, ts: 2500 }, { k: "a", v: 0, ts: 6000 }];
  const order = (s: DataStream<Event>) => s.keyBy((e) => e.k).process<string>({
    processElement(e, ctx) { if (e.ts === 1000) { ctx.timers.registerEventTimeTimer(5000); ctx.timers.registerEventTimeTimer(3000); } },
    onTimer(ts, ctx) {
      if (ts === 3000) ctx.timers.registerEventTimeTimer(3500);
      ctx.collect(`timer ${ts}`);
    },
  });
  for (const mode of ["streaming", "batch"] as const) {
    const out = await run(mode, events, order, { asyncState: { enabled: false } });
    assert.equal(out, ["timer 3000", "timer 3500", "timer 5000"], mode);
  }
});

batch("a batch job stopped before its input ended is cancelled: no partial result is emitted as final", async () => {
  const env = StreamEnvironment.create({ name: "batchstop", nats: nats.url, parallelism: 1, stateBackend: "heap", mode: "batch" }, { log: () => {} });
  const out: unknown[] = [];
  try {
    env.fromSource(Sources.generator({ count: 100_000_000, ratePerSec: 20_000, make: (i) => ({ k: `k${i % 3}`, v: 1 }) }))
      .keyBy((e) => e.k).reduce((a, b) => ({ k: a.k, v: a.v + b.v }))
      .sinkTo({ kind: "test", createWriter: async () => ({ write: (v: unknown) => { out.push(v); }, flush: async () => {}, close: async () => {} }) });
    const client = await env.executeAsync();
    const deadline = Date.now() + 60_000;
    while (client.status().recordsIn < 1000 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    assert.ok(client.status().recordsIn >= 1000, "records were read before the stop");
    const result = await client.stop();
    assert.is(result.state, "cancelled");
    assert.equal(out, [], "nothing emitted: the sums so far are not the job's results");
  } finally {
    await env.close();
  }
});

batch("the status says which mode a launch runs in: \"automatic\" is batch when every source is bounded", async () => {
  // With the default mode nothing told a user whether the job ran in batch or in the mixed mode (audit).
  const modeOf = async (count: number | undefined, options: Partial<JobOptions>) => {
    const env = StreamEnvironment.create({ name: `batchmode${jobs++}`, nats: nats.url, parallelism: 1, stateBackend: "heap", ...options }, { log: () => {} });
    try {
      env.fromSource(Sources.generator({ ...(count ? { count } : {}), ratePerSec: 100, make: (i) => i }), { name: "ticks" })
        .sinkTo({ kind: "test", createWriter: async () => ({ write: () => {}, flush: async () => {}, close: async () => {} }) });
      const client = await env.executeAsync();
      try {
        const s = client.status();
        return `${s.mode} ${s.backlogSorted}|${formatStatus(s).split("\n")[1]!.replace(/.*; mode /, "")}`;
      } finally {
        await client.cancel();
      }
    } finally {
      await env.close();
    }
  };
  assert.is(await modeOf(1_000_000, {}), "batch false|batch");
  assert.is(await modeOf(undefined, {}), "automatic true|automatic: streaming, backlogs sorted by key");
  assert.is(await modeOf(1_000_000, { checkpointIntervalMs: 60_000 }), "automatic false|automatic: streaming, backlogs not sorted (checkpointIntervalDuringBacklogMs is not 0)");
  assert.is(await modeOf(undefined, { mode: "streaming" }), "streaming false|streaming");
});

batch.run();
