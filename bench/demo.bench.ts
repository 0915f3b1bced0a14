// `npm run bench demo`: the demo's pipeline (examples/demo/pageviews.ts: JetStream source → per-user and
// per-page counts in keyed state → exactly-once JetStream sink, two output messages per page view) under
// the demo's producer (a process of its own) aiming at 20k page views/s for ~20 s.
// weir: the input rate weir kept up with while the producer ran. Baseline: the rate the same producer
// sustains alone on the same server (the most any consumer of that stream could keep up with here).

import job from "../examples/demo/pageviews.ts";
import { resetDemoStreams } from "../examples/demo/producer.ts";
import { runLoad, type LoadResult } from "../examples/demo/load.ts";
import { resolveNatsConnection } from "../runtime/nats/connect.ts";
import type { BenchContext, Benchmark, BenchRow } from "./harness.ts";

const AIMED = Number(process.env.WEIR_BENCH_DEMO_RATE ?? 20_000);

async function freshStreams(url: string): Promise<void> {
  const env = job.createEnvironment({}, { natsFlags: { nats: url } });
  await resetDemoStreams(await env.connection());
  await env.close();
}

async function producerAlone(url: string, ms: number): Promise<LoadResult> {
  await freshStreams(url);
  return runLoad({ settings: await resolveNatsConnection({ flags: { nats: url } }), ratePerSec: AIMED, durationMs: ms });
}

async function withWeir(url: string, ms: number): Promise<LoadResult & { statsWritten: number }> {
  await freshStreams(url);
  const env = job.createEnvironment({ restore: "none" }, { natsFlags: { nats: url } });
  try {
    const client = await env.executeAsync();
    const consumed = () => { const s = client.status(); return s.recordsIn + s.deadLetters; };
    const load = await runLoad({ settings: await resolveNatsConnection({ flags: { nats: url } }), ratePerSec: AIMED, durationMs: ms, consumed });
    const result = await client.stop();
    return { ...load, statsWritten: result.status.recordsOut };
  } finally {
    await env.close();
  }
}

const describe = (r: LoadResult) => `producer ${Math.round(r.sustainedPerSec)}/s of ${r.aimedPerSec}/s aimed (${r.published} in ${(r.producer.elapsedMs / 1000).toFixed(1)} s)`;

const bench: Benchmark = {
  name: "demo",
  description: `the demo pipeline under its producer (own process) aiming at ${AIMED} page views/s: the input rate weir keeps up with`,
  async run(ctx: BenchContext): Promise<BenchRow[]> {
    const ms = Math.max(3000, Math.round(20_000 * ctx.scale));
    const alone = await producerAlone(ctx.url, ms);
    ctx.log(`producer alone: ${describe(alone)}`);
    const weir = await withWeir(ctx.url, ms);
    const caught = weir.caughtUpAfterMs === undefined ? `did not catch up (${weir.behindAtEnd} behind)` : `caught up ${(weir.caughtUpAfterMs / 1000).toFixed(1)} s after the producer stopped`;
    ctx.log(`with weir: ${describe(weir)}; weir kept up with ${Math.round(weir.keptUpPerSec)}/s, ${weir.behindAtStop} behind at the stop, ${caught}; ${weir.statsWritten} stats written`);
    return [
      { figure: `demo: input rate weir keeps up with (aimed ${AIMED}/s) vs the producer alone`, weir: weir.keptUpPerSec, baseline: alone.sustainedPerSec, unit: "page views/s", goal: "weir >= 12,000/s" },
      { figure: "demo: rate the producer sustains beside weir vs aimed", weir: weir.sustainedPerSec, baseline: AIMED, unit: "page views/s" },
      { figure: "demo: catch-up after the producer stopped", weir: (weir.caughtUpAfterMs ?? Number.NaN) / 1000, unit: "s", note: caught },
    ];
  },
};

export default bench;
