// Bounded jobs as a user meets them (audit of batch mode): the figures a finished job reports, the
// errors a batch job's options and budgets give.
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { Sources, StreamEnvironment, type SinkDef } from "../mod.ts";
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
