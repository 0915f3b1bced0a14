// `npm run bench timers`: what a checkpoint costs when every key holds a timer (a session timeout moved on
// every record: the old timer deleted, a new one registered), against the same job without timers. The
// timers of a key group are one state entry (runtime/keyed/timers/timer-state.ts), rewritten whole when
// any of them changed, so such a checkpoint writes every timer of the job: its size grows with the number
// of timers, not with the change (README, known gaps). 200k keys at 10k records/s, 1 s checkpoints, KV
// state; the checkpoints after every key was seen are measured. WEIR_BENCH_SCALE scales the keys.

import * as t from "io-ts";
import { Sources, StreamEnvironment, valueState, type SinkDef, type SourceDef } from "../mod.ts";
import type { CheckpointSummary } from "../runtime/checkpoint/metadata.ts";
import type { BenchContext, Benchmark, BenchRow } from "./harness.ts";

const last = valueState("last", t.number);
const RATE = 10_000;
/** Far in the future: no timer fires during the run. */
const TIMEOUT_BASE = 4_000_000_000_000;

interface Event { k: string; i: number }
const discard: SinkDef<unknown> = { kind: "discard", createWriter: async () => ({ write: () => {}, flush: async () => {}, close: async () => {} }) };

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? Number.NaN;

async function run(ctx: BenchContext, timers: boolean, keys: number): Promise<{ bytes: number; ms: number; count: number }> {
  const name = `bench-timers-${timers ? "on" : "off"}`;
  const env = StreamEnvironment.create({ name, nats: ctx.url, parallelism: 1, stateBackend: "jetstream-kv", checkpointIntervalMs: 1000, restore: "none" }, { log: () => {} });
  // Every key seen once in the first keys/RATE seconds, then as long again measured.
  const records = 2 * keys;
  env.fromSource(Sources.generator({ ratePerSec: RATE, count: records, make: (i): Event => ({ k: `key-${(i * 7919) % keys}`, i }) }) as SourceDef<Event>)
    .keyBy((e) => e.k)
    .process({
      async processElement(e, c) {
        const previous = await c.state(last).value();
        const at = TIMEOUT_BASE + e.i;
        if (timers) {
          if (previous !== undefined) c.timers.deleteProcessingTimeTimer(previous);
          c.timers.registerProcessingTimeTimer(at);
        }
        await c.state(last).update(at);
      },
    })
    .sinkTo(discard);
  const seen = new Map<number, CheckpointSummary>();
  const client = await env.executeAsync();
  try {
    const measuredFrom = performance.now() + (keys / RATE) * 1000 + 1000;
    let done = false;
    const result = client.result().finally(() => { done = true; });
    while (!done) {
      const c = client.status().checkpoints?.lastCompleted;
      if (c !== undefined && performance.now() > measuredFrom) seen.set(c.id, c);
      await new Promise((r) => setTimeout(r, 100));
    }
    await result;
  } finally {
    await env.close();
  }
  const measured = [...seen.values()];
  if (measured.length < 3) throw new Error(`${name}: ${measured.length} checkpoints measured, too few`);
  const bytes = median(measured.map((c) => c.bytes));
  const ms = median(measured.map((c) => c.durationMs));
  ctx.log(`${timers ? "a timer per key" : "no timers"}: ${measured.length} checkpoints after every key was seen; median ${bytes} bytes (max ${Math.max(...measured.map((c) => c.bytes))}), ${ms} ms (max ${Math.max(...measured.map((c) => c.durationMs))})`);
  return { bytes, ms, count: measured.length };
}

const bench: Benchmark = {
  name: "timers",
  description: "checkpoints of a keyed job with a timer per key (moved on every record) vs without timers: size and duration",
  async run(ctx: BenchContext): Promise<BenchRow[]> {
    const keys = Math.round(200_000 * ctx.scale);
    const off = await run(ctx, false, keys);
    const on = await run(ctx, true, keys);
    return [
      { figure: `checkpoint size, ${keys} keys each with a timer vs no timers (10k records/s, 1 s checkpoints, KV), median`, weir: on.bytes, baseline: off.bytes, unit: "bytes", goal: "(flat in the number of timers: not met, known gap)" },
      { figure: "  the same, checkpoint duration, median", weir: on.ms, baseline: off.ms, unit: "ms" },
    ];
  },
};

export default bench;
