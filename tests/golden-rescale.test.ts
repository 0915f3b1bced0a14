// Golden end-to-end: one job with every kind of operator (filter, map, keyed process with value state and
// event-time timers, event-time windows with reduce) over a bounded generator, run complete at
// parallelism 2; then the same input stopped with a savepoint at 2, resumed at 3 and stopped with a
// savepoint again, and finished at 1. The second run's output must equal the first's, record for record
// (as multisets: the order across keys depends on the parallelism, each key's values do not), for both
// state backends.
import { suite } from "uvu";
import * as assert from "uvu/assert";
import * as t from "io-ts";
import { Sources, StreamEnvironment, TumblingEventTimeWindows, valueState, WatermarkStrategy, type SinkDef } from "../mod.ts";
import { withServer } from "./helpers/nats-server.ts";
import { finishOrStopWithSavepoint } from "./helpers/savepoint-runs.ts";

const golden = suite("golden: complete vs checkpointed and restored at other parallelisms");
const nats = withServer(golden);

const RECORDS = 6000;
interface Reading { i: number; key: string; ts: number }
type Out = { kind: "count"; key: string; n: number } | { kind: "timer"; key: string; at: number } | { kind: "window"; key: string; start: number; sum: number };
const seen = valueState("seen", t.number);

/** Runs the job at `parallelism`; with `stopAfter`, stops it with a savepoint once that many records were read. */
async function run(name: string, backend: "heap" | "jetstream-kv", parallelism: number, out: string[], stopAfter?: number): Promise<void> {
  const sink: SinkDef<Out> = { kind: "test-collect", createWriter: async () => ({ write: (o) => { out.push(JSON.stringify(o)); }, flush: async () => {}, close: async () => {} }) };
  const env = StreamEnvironment.create({ name, nats: nats.url, parallelism, checkpointIntervalMs: 200, stateBackend: backend }, { log: () => {} });
  try {
    const keyed = env
      .fromSource(Sources.generator({ count: RECORDS, ratePerSec: 4000, make: (i): Reading => ({ i, key: `k${(i * 7) % 13}`, ts: i }) }), {
        uid: "readings", watermarks: WatermarkStrategy.forMonotonousTimestamps<Reading>((r) => r.ts),
      })
      .filter((r) => r.i % 5 !== 0, { uid: "drop-fifths" })
      .map((r) => ({ ...r, v: r.i % 10 }), { uid: "value" })
      .keyBy((r) => r.key);
    keyed
      .process<Out>({
        async processElement(r, ctx) {
          const n = ((await ctx.state(seen).value()) ?? 0) + 1;
          await ctx.state(seen).update(n);
          ctx.timers.registerEventTimeTimer(Math.floor(r.ts / 1000) * 1000 + 999);
          ctx.collect({ kind: "count", key: r.key, n });
        },
        // Only what is deterministic: when it fires, records of later seconds may have been counted already.
        onTimer(at, ctx) { ctx.collect({ kind: "timer", key: ctx.key, at }); },
      }, { uid: "count" })
      .sinkTo(sink, { uid: "out-count" });
    keyed
      .window(TumblingEventTimeWindows.of(1000))
      .reduce((a, b) => ({ ...a, v: a.v + b.v }), { uid: "window" })
      .map((r): Out => ({ kind: "window", key: r.key, start: Math.floor(r.ts / 1000) * 1000, sum: r.v }), { uid: "window-out" })
      .sinkTo(sink, { uid: "out-window" });
    await finishOrStopWithSavepoint(await env.executeAsync(), stopAfter);
  } finally {
    await env.close();
  }
}

/** What `b` lacks of `a` and has beyond it (the first ten of each). */
function multisetDiff(a: readonly string[], b: readonly string[]): { missing: string[]; extra: string[] } {
  const counts = new Map<string, number>();
  for (const x of a) counts.set(x, (counts.get(x) ?? 0) + 1);
  for (const x of b) counts.set(x, (counts.get(x) ?? 0) - 1);
  const missing = [...counts].filter(([, n]) => n > 0).map(([x]) => x);
  const extra = [...counts].filter(([, n]) => n < 0).map(([x]) => x);
  return { missing: missing.slice(0, 10), extra: extra.slice(0, 10) };
}

for (const backend of ["jetstream-kv", "heap"] as const) {
  golden(`${backend}: complete at 2 equals savepoint at 2 → 3 → end at 1`, async () => {
    const complete: string[] = [];
    await run(`golden-all-${backend.length}`, backend, 2, complete);
    const kinds = new Set(complete.map((o) => (JSON.parse(o) as Out).kind));
    assert.equal([...kinds].sort(), ["count", "timer", "window"], "every operator produced output");
    const restored: string[] = [];
    const name = `golden-rescaled-${backend.length}`;
    await run(name, backend, 2, restored, RECORDS / 3);
    const first = restored.length;
    await run(name, backend, 3, restored, RECORDS / 3);
    assert.ok(restored.length > first, "the run at 3 went on");
    await run(name, backend, 1, restored);
    const diff = multisetDiff(complete, restored);
    assert.equal(diff, { missing: [], extra: [] }, `the same outputs (${complete.length} complete, ${restored.length} restored)`);
  });
}

golden.run();
