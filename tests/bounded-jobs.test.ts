// Bounded jobs as a user meets them (audit of batch mode): the figures a finished job reports, the
// errors a batch job's options and budgets give.
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { Sources, StreamEnvironment, WatermarkStrategy, type SinkDef } from "../mod.ts";
import { withServer } from "./helpers/nats-server.ts";

const test = suite("bounded jobs");
const nats = withServer(test);

/** A sink keeping what it is given in `into`. */
const kept = <T>(into: T[]): SinkDef<T> => ({ kind: "test", createWriter: async () => ({ write: (v: T) => { into.push(v); }, flush: async () => {}, close: async () => {} }) });

test("records out counts every sink's records, one chained behind an operator that also sends downstream too", async () => {
  // A map feeding both a sink (chained with it) and a keyed reduce: `weir run` said "1 out" for 6.
  for (const mode of ["batch", "streaming"] as const) {
    const env = StreamEnvironment.create({ name: `bounded-out-${mode}`, nats: nats.url, parallelism: 1, stateBackend: "heap", mode }, { log: () => {} });
    try {
      const all: number[] = [];
      const sums: number[] = [];
      const tens = env.fromSource(Sources.array([1, 2, 3, 4, 5])).map((n) => n * 10);
      tens.sinkTo(kept(all));
      tens.keyBy((n) => n % 20).reduce((a, b) => a + b).sinkTo(kept(sums));
      const result = await env.execute();
      assert.is(all.length + sums.length, mode === "batch" ? 7 : 10);
      assert.is(result.status.recordsIn, 5, mode);
      assert.is(result.status.recordsOut, all.length + sums.length, `${mode}: every record a sink wrote`);
    } finally {
      await env.close();
    }
  }
  // A cached stream's records written to the cache are no output of the job's sinks.
  const env = StreamEnvironment.create({ name: "bounded-out-cache", nats: nats.url, parallelism: 1, stateBackend: "heap", mode: "batch" }, { log: () => {} });
  try {
    const all: number[] = [];
    env.fromSource(Sources.array([1, 2, 3])).map((n) => n * 10).cache().sinkTo(kept(all));
    assert.is((await env.execute()).status.recordsOut, 3);
  } finally {
    await env.close();
  }
});

test("batch mode: a keyed reduce folds a key's records in arrival order, as streaming does (README), a process function sees them in timestamp order", async () => {
  const input = [{ k: "a", v: 1, ts: 300 }, { k: "a", v: 2, ts: 100 }, { k: "a", v: 3, ts: 200 }];
  const seen = async (mode: "batch" | "streaming") => {
    const env = StreamEnvironment.create({ name: `bounded-order-${mode}`, nats: nats.url, parallelism: 1, stateBackend: "heap", mode }, { log: () => {} });
    try {
      const s = env.fromSource(Sources.array(input), { watermarks: WatermarkStrategy.boundedOutOfOrderness<typeof input[0]>(1000, (e) => e.ts) });
      const last = s.keyBy((e) => e.k).reduce((_a, b) => b).process<string>({ processElement(e, ctx) { ctx.collect(`last ${e.v} at ${ctx.timestamp}`); } });
      const order = s.keyBy((e) => e.k).process<string>({ processElement(e, ctx) { ctx.collect(`saw ${e.v}`); } });
      return await last.union(order).executeAndCollect();
    } finally {
      await env.close();
    }
  };
  const batch = await seen("batch");
  assert.equal(batch.filter((o) => o.startsWith("last")), ["last 3 at 200"], "the last record to arrive, with its timestamp");
  assert.equal(batch.filter((o) => o.startsWith("saw")), ["saw 2", "saw 3", "saw 1"]);
  assert.is((await seen("streaming")).filter((o) => o.startsWith("last")).pop(), "last 3 at 200");
});

test("batch mode: a processing-time timer re-registering itself (every 10 s) fires once at the key's end and the job ends, saying so", async () => {
  // It fired for ever: the end of a key fired every processing-time timer, those its callbacks registered
  // too (the job hung; streaming mode ends at once, firing none).
  const logs: string[] = [];
  const env = StreamEnvironment.create({ name: "bounded-ticker", nats: nats.url, parallelism: 1, stateBackend: "heap", mode: "batch" }, { log: (m) => logs.push(m) });
  try {
    const out: string[] = [];
    let gaveUp = false; // past the deadline: the timers stop registering, so that the loop ends
    env.fromSource(Sources.array([{ k: "a" }, { k: "b" }, { k: "a" }])).keyBy((e) => e.k).process<string>({
      processElement(_e, ctx) { ctx.timers.registerProcessingTimeTimer(1_000); },
      async onTimer(ts, ctx) {
        await new Promise((r) => setImmediate(r)); // lets the deadline below in, had it fired for ever
        if (ts === 1_000) ctx.timers.registerProcessingTimeTimer(500); // due before the latest pending one: fires
        if (!gaveUp) ctx.timers.registerProcessingTimeTimer(ts + 10_000);
        if (ts < 100_000) ctx.collect(`${ctx.key} ${ts}`);
      },
    }).sinkTo(kept(out));
    const client = await env.executeAsync();
    const ended = await Promise.race([client.result().then(() => true), new Promise<false>((r) => setTimeout(() => r(false), 30_000).unref())]);
    if (!ended) {
      gaveUp = true;
      await client.cancel();
    }
    assert.ok(ended, "the job ended within 30 s");
    assert.equal(out.sort(), ["a 1000", "a 500", "b 1000", "b 500"].sort());
    assert.ok(logs.some((l) => l.includes("4 timer(s) registered at the end of a key's input did not fire")), logs.join("\n"));
  } finally {
    await env.close();
  }
});

test("a batch job beyond its sort budget is told of a way out batch mode accepts (not checkpointIntervalDuringBacklogMs, refused there)", async () => {
  const env = StreamEnvironment.create({ name: "bounded-budget", nats: nats.url, parallelism: 1, stateBackend: "heap", mode: "batch", backlogSort: { memoryBytes: 20_000, diskBytes: 50_000 } }, { log: () => {} });
  try {
    const error = await env.fromSource(Sources.generator({ count: 20_000, make: (i) => ({ k: `k${i % 5000}`, i }) }))
      .keyBy((r) => r.k).process({ processElement() {} }, { name: "ledger" })
      .executeAndCollect().then(() => "finished", (e: Error) => e.message);
    assert.match(error, /^operator "ledger": the backlog does not fit the sort budget \(memory 0 MB, disk 0 MB in .*\); raise backlogSort.diskBytes, or run the job in mode "streaming" \(batch mode sorts its whole input\)$/);
  } finally {
    await env.close();
  }
});

test.run();
