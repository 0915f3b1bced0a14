// `npm run bench cache`: re-running an expensive pipeline from its cache (DataStream.cache, FLIP-205)
// against recomputing it. The pipeline: generator → map burning ~50 µs of CPU per record (a spin loop
// calibrated here) → a counting sink, parallelism 2, mode "batch". "Recompute" runs it with no cache;
// "from cache" is the second execution of the cached pipeline (the first one computes and writes it,
// also timed, to show what writing the cache costs).
import { Sources, StreamEnvironment, type SinkDef } from "../mod.ts";
import { spin } from "./jobs/cpu-keys.ts";
import { calibrate } from "./workers-support.ts";
import { rate, type BenchContext, type Benchmark, type BenchRow } from "./harness.ts";

const COST_US = 50;

interface Rec { i: number; h: number; tag: string }

function counting(counter: { n: number }): SinkDef<unknown> {
  return { kind: "count", createWriter: async () => ({ write: () => { counter.n++; }, flush: async () => {}, close: async () => {} }) };
}

async function timed(run: () => Promise<unknown>): Promise<number> {
  const t0 = performance.now();
  await run();
  return performance.now() - t0;
}

const bench: Benchmark = {
  name: "cache",
  description: "an expensive map (50 µs CPU per record): read back from its cache vs recomputed",
  async run(ctx: BenchContext): Promise<BenchRow[]> {
    const count = Math.round(100_000 * ctx.scale);
    const rounds = calibrate(COST_US);
    ctx.log(`${count} records, ${rounds} spin rounds ≈ ${COST_US} µs each`);
    const source = () => Sources.generator({ count, make: (i: number) => i });
    const expensive = (i: number): Rec => ({ i, h: spin(i, rounds), tag: `r${i % 1000}` });
    const options = { nats: ctx.url, parallelism: 2, mode: "batch" as const };

    const plain = StreamEnvironment.create({ ...options, name: "bench-recompute" }, { log: () => {} });
    const counted = { n: 0 };
    let recomputeMs: number;
    try {
      plain.fromSource(source()).map(expensive).sinkTo(counting(counted));
      recomputeMs = await timed(() => plain.execute());
    } finally {
      await plain.close();
    }

    const env = StreamEnvironment.create({ ...options, name: "bench-cached" }, { log: () => {} });
    const fromCache = { n: 0 };
    let writeMs: number;
    let readMs: number;
    try {
      const cached = env.fromSource(source()).map(expensive).cache();
      cached.sinkTo(counting({ n: 0 }));
      writeMs = await timed(() => env.execute());
      cached.sinkTo(counting(fromCache));
      readMs = await timed(() => env.execute());
    } finally {
      await env.close();
    }
    if (counted.n !== count || fromCache.n !== count) throw new Error(`bench cache: counted ${counted.n} recomputed, ${fromCache.n} from the cache, expected ${count}`);
    ctx.log(`recompute ${Math.round(recomputeMs)} ms, first cached execution (computes + writes) ${Math.round(writeMs)} ms, from cache ${Math.round(readMs)} ms: ${(recomputeMs / readMs).toFixed(1)}× faster`);
    return [
      { figure: `re-running a 50 µs/record map of ${count} records, parallelism 2: from its cache vs recomputed, records/s`, weir: rate(count, readMs), baseline: rate(count, recomputeMs), unit: "records/s", goal: ">= 10" },
      { figure: "the execution that writes the cache vs one that does not cache, records/s", weir: rate(count, writeMs), baseline: rate(count, recomputeMs), unit: "records/s" },
    ];
  },
};

export default bench;
