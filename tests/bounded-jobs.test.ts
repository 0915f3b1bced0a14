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
