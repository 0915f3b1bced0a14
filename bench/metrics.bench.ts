// `npm run bench metrics`: what serving /metrics costs. The same jobs run with the metrics HTTP server
// (as `weir run --http` sets it up) scraped every second, and without it; weir against itself.
// 1. Stateless: generator → map → filter → keyBy (p=2) → NATS sink.
// 2. Keyed: generator → keyBy → count per key in KV state (p=2), 20k keys.
// Runs alternate off/on (which goes first alternates too) after a warm-up of each, every stream deleted
// between runs; the figure is the median of the runs.

import { Sinks, Sources, StreamEnvironment, valueState } from "../mod.ts";
import * as t from "io-ts";
import { HttpServer } from "../runtime/cli/http/server.ts";
import { localJobViews } from "../runtime/cli/http/job-view.ts";
import { MetricsRegistry } from "../runtime/cli/metrics/registry.ts";
import { connect } from "@nats-io/transport-node";
import { jetstreamManager } from "@nats-io/jetstream";
import { rate, type BenchContext, type Benchmark, type BenchRow } from "./harness.ts";

const count = valueState("count", t.number);
const ROUNDS = 4;

type Build = (env: StreamEnvironment, records: number, tag: string) => void;

const stateless: Build = (env, records, tag) => {
  env.fromSource(Sources.generator({ count: records, make: (i) => ({ user: `u${(i * 7919) % 10_000}`, ms: (i * 37) % 2000 }) }), { parallelism: 2 })
    .map((e) => ({ ...e, slow: e.ms > 1000 }))
    .filter((e) => e.ms >= 100)
    .keyBy((e) => e.user)
    .sinkTo(Sinks.nats({ subject: `bench.metrics.${tag}` }));
};

const keyed: Build = (env, records, tag) => {
  env.fromSource(Sources.generator({ count: records, make: (i) => `k${(i * 7919) % 20_000}` }), { parallelism: 2 })
    .keyBy((k) => k)
    .process<number>({
      async processElement(_k, ctx) {
        const n = ((await ctx.state(count).value()) ?? 0) + 1;
        await ctx.state(count).update(n);
      },
    })
    .sinkTo(Sinks.nats({ subject: `bench.metrics.${tag}` }));
};

/** One run: records/s from start to the job's end; with metrics, served on a free port and scraped every second. */
async function once(ctx: BenchContext, build: Build, name: string, records: number, metrics: boolean, backend: "heap" | "jetstream-kv"): Promise<{ rate: number; scrapes: number }> {
  const env = StreamEnvironment.create({ name, nats: ctx.url, parallelism: 2, stateBackend: backend, restore: "none" });
  build(env, records, name);
  const http = metrics ? new HttpServer() : undefined;
  const registry = metrics ? new MetricsRegistry() : undefined;
  let scrapes = 0;
  let timer: NodeJS.Timeout | undefined;
  try {
    const address = http && registry ? await http.addRoute("/metrics", registry.route()).listen({ host: "127.0.0.1", port: 0 }) : undefined;
    const t0 = performance.now();
    const client = await env.executeAsync();
    if (registry && address) {
      registry.attach(localJobViews({ status: () => client.status(), workerId: "bench" }), { job_name: name, worker: "bench" });
      timer = setInterval(() => {
        void fetch(`http://127.0.0.1:${address.port}/metrics`).then((r) => r.text()).then(() => { scrapes++; }, () => {});
      }, 1000);
    }
    const result = await client.result();
    const ms = performance.now() - t0;
    if (result.status.recordsIn !== records) throw new Error(`${name}: ${result.status.recordsIn} records in, expected ${records}`);
    return { rate: rate(records, ms), scrapes };
  } finally {
    if (timer) clearInterval(timer);
    await http?.close();
    await env.close();
  }
}

/** Every stream and bucket of the bench's own server goes after each run, so runs do not slow each other down. */
async function cleanUp(url: string): Promise<void> {
  const nc = await connect({ servers: url });
  try {
    const jsm = await jetstreamManager(nc);
    const names: string[] = [];
    for await (const si of jsm.streams.list()) names.push(si.config.name);
    for (const n of names) await jsm.streams.delete(n).catch(() => {});
  } finally {
    await nc.close();
  }
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

async function compare(ctx: BenchContext, id: string, label: string, build: Build, records: number, backend: "heap" | "jetstream-kv"): Promise<BenchRow> {
  await once(ctx, build, `bm-${id}-warm-off`, Math.round(records / 4), false, backend);
  await once(ctx, build, `bm-${id}-warm-on`, Math.round(records / 4), true, backend);
  const on: number[] = [];
  const off: number[] = [];
  let scrapes = 0;
  await cleanUp(ctx.url);
  // Alternating which goes first, so a drift of the shared machine does not favour either.
  for (let r = 0; r < ROUNDS; r++) {
    for (const metrics of r % 2 === 0 ? [false, true] : [true, false]) {
      const m = await once(ctx, build, `bm-${id}-${metrics ? "on" : "off"}-${r}`, records, metrics, backend);
      (metrics ? on : off).push(m.rate);
      scrapes += m.scrapes;
      await cleanUp(ctx.url);
    }
  }
  ctx.log(`${label}: off ${off.join(", ")}; on ${on.join(", ")} records/s; ${scrapes} scrapes while on`);
  return { figure: `${label}: /metrics served and scraped every second vs off, records/s (median of ${ROUNDS})`, weir: median(on), baseline: median(off), unit: "records/s", goal: ">= 0.97" };
}

const bench: Benchmark = {
  name: "metrics",
  description: "cost of serving /metrics (scraped every second) on a stateless and a keyed job",
  async run(ctx) {
    return [
      await compare(ctx, "stateless", "stateless (p=2, heap)", stateless, Math.round(1_000_000 * ctx.scale), "heap"),
      await compare(ctx, "keyed", "keyed count, 20k keys (p=2, KV)", keyed, Math.round(500_000 * ctx.scale), "jetstream-kv"),
    ];
  },
};

export default bench;
