// `npm run bench batch`: a bounded keyed aggregation (1M records over 100k keys, KV state backend), the
// whole job from `execute()` to its end: mode "batch" (input sorted by key, one final result per key, no
// state written) vs mode "streaming" (a result per record, state in KV). Both give the same final value
// per key, checked before the row is printed. WEIR_BENCH_SCALE scales records and keys.

import { Sources, StreamEnvironment, type SinkDef, type SourceDef } from "../mod.ts";
import { rate, type BenchContext, type Benchmark, type BenchRow } from "./harness.ts";

interface Event { k: string; v: number }
interface Acc { k: string; n: number; sum: number }

const event = (i: number, keys: number): Event => ({ k: `key-${(i * 7919) % keys}`, v: i % 10 });

/** Keeps each key's latest result and counts results. */
function latest(into: Map<string, Acc>, counter: { results: number }): SinkDef<Acc> {
  return {
    kind: "latest",
    createWriter: async () => ({
      write: (a: Acc) => { into.set(a.k, a); counter.results++; },
      flush: async () => {},
      close: async () => {},
    }),
  };
}

async function runAggregate(ctx: BenchContext, name: string, records: number, keys: number, mode: "batch" | "streaming", into: Map<string, Acc>): Promise<{ ms: number; results: number }> {
  const env = StreamEnvironment.create({ name, nats: ctx.url, parallelism: 2, stateBackend: "jetstream-kv", mode }, { log: () => {} });
  const counter = { results: 0 };
  env.fromSource(Sources.generator({ count: records, make: (i) => event(i, keys) }) as SourceDef<Event>, { name: "events" })
    .keyBy((e) => e.k)
    .aggregate<Acc, Acc>({
      createAccumulator: () => ({ k: "", n: 0, sum: 0 }),
      add: (e, acc) => ({ k: e.k, n: acc.n + 1, sum: acc.sum + e.v }),
      getResult: (acc) => acc,
    }, { name: "count-and-sum" })
    .sinkTo(latest(into, counter), { parallelism: 1 });
  const t0 = performance.now();
  try {
    await env.execute();
  } finally {
    await env.close();
  }
  return { ms: performance.now() - t0, results: counter.results };
}

const bench: Benchmark = {
  name: "batch",
  description: "bounded keyed aggregation, 1M records over 100k keys (KV): mode \"batch\" vs mode \"streaming\", whole job",
  async run(ctx: BenchContext): Promise<BenchRow[]> {
    const records = Math.round(1_000_000 * ctx.scale);
    const keys = Math.round(100_000 * ctx.scale);
    // Warm-up of both modes (not measured): the first measured run would otherwise also pay for compiling shared code.
    for (const mode of ["batch", "streaming"] as const) await runAggregate(ctx, `batch-warmup-${mode}`, Math.round(records / 20), Math.round(keys / 20), mode, new Map());
    const batchOut = new Map<string, Acc>();
    const streamOut = new Map<string, Acc>();
    const batch = await runAggregate(ctx, "batch-mode", records, keys, "batch", batchOut);
    ctx.log(`batch: ${Math.round(batch.ms)} ms, ${batch.results} results`);
    const streaming = await runAggregate(ctx, "batch-streaming", records, keys, "streaming", streamOut);
    ctx.log(`streaming: ${Math.round(streaming.ms)} ms, ${streaming.results} results`);
    const equal = batchOut.size === keys && streamOut.size === keys
      && [...batchOut].every(([k, a]) => { const s = streamOut.get(k); return s !== undefined && s.n === a.n && s.sum === a.sum; });
    if (!equal || batch.results !== keys || streaming.results !== records) {
      throw new Error(`batch and streaming disagree (keys ${batchOut.size}/${streamOut.size}, results ${batch.results}/${streaming.results})`);
    }
    ctx.log(`final values equal for all ${keys} keys; ratio ${(streaming.ms / batch.ms).toFixed(2)}`);
    return [{
      figure: `keyed aggregation of ${records} records over ${keys} keys (KV), whole job: batch vs streaming`,
      weir: rate(records, batch.ms), baseline: rate(records, streaming.ms), unit: "records/s", goal: ">= 3",
    }];
  },
};

export default bench;
