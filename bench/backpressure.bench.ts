// `npm run bench backpressure`: checkpoint durations under backpressure. A fast generator (p=2) → keyBy →
// map (p=2) → a sink paced to 200 or 1000 records/s (p=1), checkpoints every second, run with buffer
// debloating on (the default, bufferDebloatTargetMs 1000) and off (0) in the same run. Without it every
// channel holds its full credit window of full frames ahead of a barrier, which a slow sink takes tens
// of seconds to drain.

import { Sources, StreamEnvironment } from "../mod.ts";
import { pacedSink } from "./jobs/paced-sink.ts";
import type { BenchContext, Benchmark, BenchRow } from "./harness.ts";


interface Run { durations: number[]; aborted: number; pendingMs: number; delivered: number }

async function run(url: string, rate: number, debloat: boolean, seconds: number): Promise<Run> {
  const delivered = { n: 0 };
  const env = StreamEnvironment.create({
    name: `bench-bp-${rate}-${debloat ? "on" : "off"}`, nats: url, parallelism: 2, stateBackend: "heap",
    checkpointIntervalMs: 1000, ...(debloat ? {} : { bufferDebloatTargetMs: 0 }),
  });
  env.fromSource(Sources.generator({ make: (i) => ({ user: `user-${i % 5000}`, payload: "x".repeat(100), i }) }), { name: "fast" })
    .keyBy((r) => r.user)
    .map((r) => r)
    .sinkTo(pacedSink(rate, delivered), { parallelism: 1 });
  const client = await env.executeAsync();
  const completed = new Map<number, number>();
  let aborted = 0;
  let pending: { id: number; since: number } | undefined;
  try {
    const end = Date.now() + seconds * 1000;
    while (Date.now() < end) {
      await new Promise((r) => setTimeout(r, 100));
      const c = client.status().checkpoints;
      if (c?.lastCompleted) completed.set(c.lastCompleted.id, c.lastCompleted.durationMs);
      aborted = c?.aborted ?? 0;
      if (c?.inFlight !== undefined && c.inFlight !== pending?.id) pending = { id: c.inFlight, since: Date.now() };
      if (c?.inFlight === undefined) pending = undefined;
    }
  } finally {
    await client.cancel().catch(() => {});
    await env.close();
  }
  return { durations: [...completed.values()], aborted, pendingMs: pending ? Date.now() - pending.since : 0, delivered: delivered.n };
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s.length ? s[Math.floor(s.length / 2)]! : Number.NaN;
}

/** The slowest checkpoint, counting one still in flight at the end (at least that long). */
const worst = (r: Run) => Math.max(0, r.pendingMs, ...r.durations);

const describe = (r: Run) =>
  `${r.durations.length} completed (${r.durations.join(", ") || "-"} ms), ${r.aborted} aborted, ${r.pendingMs ? `one in flight for ${r.pendingMs} ms, ` : ""}${r.delivered} delivered`;

const bench: Benchmark = {
  name: "backpressure",
  description: "checkpoint durations with a sink paced to 200 and 1000 records/s under a fast source: buffer debloating on vs off",
  async run(ctx: BenchContext): Promise<BenchRow[]> {
    const seconds = Math.max(10, Math.round(30 * ctx.scale));
    const rows: BenchRow[] = [];
    for (const rate of [200, 1000]) {
      const on = await run(ctx.url, rate, true, seconds);
      ctx.log(`sink ${rate}/s, debloating on:  ${describe(on)}`);
      const off = await run(ctx.url, rate, false, seconds);
      ctx.log(`sink ${rate}/s, debloating off: ${describe(off)}`);
      rows.push(
        { figure: `checkpoint duration, sink at ${rate} records/s, debloating on vs off (median; off: none completed → the in-flight one's age)`, weir: median(on.durations), baseline: off.durations.length ? median(off.durations) : off.pendingMs, unit: "ms", goal: rate === 200 ? "< 5 s" : "" },
        { figure: `slowest checkpoint, sink at ${rate} records/s, debloating on vs off (≥ when still in flight)`, weir: worst(on), baseline: worst(off), unit: "ms" },
      );
    }
    return rows;
  },
};

export default bench;
