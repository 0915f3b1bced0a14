// The job of `npm run bench checkpoint`: a keyed count on the KV backend over `keys` keys, fed by a
// generator (`count` records, or unbounded at `ratePerSec`), every new count to the core NATS subject
// `bench.out` (the bench watches it for the first output after a restart). The bench runs it in-process
// (buildKeyedCounts) and in child processes through the default export (`weir run`, parameters from
// BENCH_* variables), so that a crash is a real SIGKILL.
import * as t from "io-ts";
import { defineJob, Sinks, Sources, valueState, type StreamEnvironment } from "weir";

export interface KeyedCountsParams {
  readonly keys: number;
  readonly count?: number;
  readonly ratePerSec?: number;
  /** "dense": record i updates key i mod keys (loads every key once); "spread": a pseudo-random key. */
  readonly order: "dense" | "spread";
}

const counter = valueState("count", t.number);

export function buildKeyedCounts(env: StreamEnvironment, p: KeyedCountsParams): void {
  const keyOf = p.order === "spread" ? (i: number) => (Math.imul(i + 1, 2654435761) >>> 0) % p.keys : (i: number) => i % p.keys;
  env
    .fromSource(Sources.generator({
      ...(p.count !== undefined ? { count: p.count } : {}),
      ...(p.ratePerSec !== undefined ? { ratePerSec: p.ratePerSec } : {}),
      make: (i) => ({ k: `user-${keyOf(i)}`, i }),
    }), { uid: "events", parallelism: 2 }) // the rescale bench measures the keyed operator's, not the generator's
    .keyBy((e) => e.k)
    .process<{ k: string; n: number }>({
      async processElement(e, ctx) {
        const n = ((await ctx.state(counter).value()) ?? 0) + 1;
        await ctx.state(counter).update(n);
        ctx.collect({ k: e.k, n });
      },
    }, { uid: "count" })
    .sinkTo(Sinks.nats({ subject: "bench.out" }), { uid: "out" });
}

const env = process.env;
export default defineJob({
  name: env.BENCH_JOB ?? "bench-counts",
  parallelism: 2,
  stateBackend: "jetstream-kv",
  checkpointIntervalMs: Number(env.BENCH_CHECKPOINT_MS ?? 1000),
  checkpointsRetained: 1000,
}, (e) => buildKeyedCounts(e, {
  keys: Number(env.BENCH_KEYS ?? 10_000),
  ...(env.BENCH_COUNT ? { count: Number(env.BENCH_COUNT) } : {}),
  ...(env.BENCH_RATE ? { ratePerSec: Number(env.BENCH_RATE) } : {}),
  order: env.BENCH_ORDER === "dense" ? "dense" : "spread",
}));
