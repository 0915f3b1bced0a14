// `npm run bench stateless`:
// 1. 1M JSON events in a JetStream stream → map → filter → keyBy exchange at parallelism 2 → NATS sink,
//    against a hand-written NATS consumer doing the same work (parse, map, filter, publish).
// 2. The internal keyed exchange alone (generator → keyBy → counting sink, parallelism 2), against the raw
//    batched core-NATS ceiling (JSON frames of 100 records, publish → subscribe) measured in this run.
// 3. Memory under backpressure: a fast source into a sink slowed to 1k records/s; the process RSS.

import { connect, type NatsConnection } from "@nats-io/transport-node";
import { jetstream, jetstreamManager } from "@nats-io/jetstream";
import { Sinks, Sources, StreamEnvironment, type SinkDef } from "../mod.ts";
import { rate, rssMb, type BenchContext, type Benchmark, type BenchRow } from "./harness.ts";

interface PageView { user: string; page: string; ts: number; ms: number }
interface Enriched { user: string; page: string; ms: number; slow: boolean }

const enrich = (e: PageView): Enriched => ({ user: e.user, page: e.page, ms: e.ms, slow: e.ms > 1000 });
const keep = (e: Enriched): boolean => e.ms >= 100;

async function fillStream(nc: NatsConnection, stream: string, count: number): Promise<void> {
  const jsm = await jetstreamManager(nc);
  await jsm.streams.delete(stream).catch(() => {});
  await jsm.streams.add({ name: stream, subjects: [`${stream.toLowerCase()}.*`] });
  const js = jetstream(nc);
  let inflight: Promise<unknown>[] = [];
  for (let i = 0; i < count; i++) {
    const e: PageView = { user: `user-${(i * 7919) % 10_000}`, page: `/page/${i % 100}`, ts: 1_700_000_000_000 + i, ms: (i * 37) % 2000 };
    inflight.push(js.publish(`${stream.toLowerCase()}.${i % 2}`, JSON.stringify(e)));
    if (inflight.length >= 2000) { await Promise.all(inflight); inflight = []; }
  }
  await Promise.all(inflight);
}

/** The baseline: what a team writes by hand — one ordered consumer, parse, map, filter, publish. */
async function handWritten(url: string, stream: string, count: number): Promise<number> {
  const nc = await connect({ servers: url });
  const js = jetstream(nc);
  const consumer = await js.consumers.get(stream);
  const t0 = performance.now();
  const messages = await consumer.consume({ max_messages: 1000 });
  let n = 0;
  for await (const m of messages) {
    const e = enrich(JSON.parse(m.string()) as PageView);
    if (keep(e)) nc.publish("bench.out.baseline", JSON.stringify(e));
    if (++n === count) break;
  }
  await nc.flush();
  const ms = performance.now() - t0;
  await messages.close();
  await nc.close();
  return rate(count, ms);
}

async function weirPipeline(url: string, stream: string, count: number): Promise<number> {
  const env = StreamEnvironment.create({ name: "bench-stateless", nats: url, parallelism: 2, stateBackend: "heap" });
  env.fromSource(Sources.jetstream<PageView>({ stream, subjects: [`${stream.toLowerCase()}.0`, `${stream.toLowerCase()}.1`], bounded: true }), { name: "events" })
    .map(enrich)
    .filter(keep)
    .keyBy((e) => e.user)
    .sinkTo(Sinks.nats({ subject: "bench.out.weir" }));
  const t0 = performance.now();
  const result = await env.execute();
  const ms = performance.now() - t0;
  await env.close();
  if (result.status.recordsIn !== count) throw new Error(`weir read ${result.status.recordsIn} of ${count} events`);
  return rate(count, ms);
}

/** Raw ceiling: JSON frames of 100 records, publish → subscribe on one connection (the ceiling measured for core NATS). */
async function rawFrames(url: string, total: number): Promise<number> {
  const nc = await connect({ servers: url });
  const sub = nc.subscribe("bench.raw");
  let got = 0;
  const done = (async () => {
    for await (const m of sub) {
      got += (JSON.parse(m.string()) as unknown[]).length;
      if (got >= total) break;
    }
  })();
  const frame = JSON.stringify(Array.from({ length: 100 }, (_, i) => ({ k: i % 1000, v: i })));
  const t0 = performance.now();
  for (let i = 0; i < total / 100; i++) {
    nc.publish("bench.raw", frame);
    if (i % 200 === 0) await nc.flush();
  }
  await done;
  const ms = performance.now() - t0;
  await nc.close();
  return rate(total, ms);
}

function countingSink(counter: { n: number }): SinkDef<unknown> {
  return { kind: "count", createWriter: async () => ({ write: () => { counter.n++; }, flush: async () => {}, close: async () => {} }) };
}

async function keyedExchange(url: string, total: number): Promise<number> {
  const counter = { n: 0 };
  const env = StreamEnvironment.create({ name: "bench-exchange", nats: url, parallelism: 2, stateBackend: "heap" });
  env.fromSource(Sources.generator({ count: total, make: (i) => ({ k: i % 1000, v: i }) }))
    .keyBy((r) => r.k)
    .sinkTo(countingSink(counter));
  const t0 = performance.now();
  await env.execute();
  const ms = performance.now() - t0;
  await env.close();
  if (counter.n !== total) throw new Error(`exchange delivered ${counter.n} of ${total}`);
  return rate(total, ms);
}

async function memoryUnderBackpressure(url: string, seconds: number, log: (l: string) => void): Promise<{ maxRss: number; delivered: number; produced: number }> {
  const delivered = { n: 0 };
  const started = performance.now();
  const slowSink: SinkDef<unknown> = {
    kind: "slow",
    createWriter: async () => ({
      write: () => {
        delivered.n++;
        // Paced to 1k records/s overall: wait until this record's slot comes up.
        const due = started + delivered.n;
        const wait = due - performance.now();
        if (wait > 1) return new Promise<void>((r) => setTimeout(r, wait));
      },
      flush: async () => {},
      close: async () => {},
    }),
  };
  const env = StreamEnvironment.create({ name: "bench-memory", nats: url, parallelism: 2, stateBackend: "heap" });
  env.fromSource(Sources.generator({ make: (i) => ({ user: `user-${i % 5000}`, payload: "x".repeat(200), i }) }), { name: "fast" })
    .keyBy((r) => r.user)
    .map((r) => r)
    .sinkTo(slowSink, { parallelism: 1 });
  const client = await env.executeAsync();
  let maxRss = 0;
  const end = Date.now() + seconds * 1000;
  while (Date.now() < end) {
    await new Promise((r) => setTimeout(r, 1000));
    global.gc?.();
    maxRss = Math.max(maxRss, rssMb());
  }
  const produced = client.status().recordsIn;
  log(`backpressure: ${produced} produced, ${delivered.n} delivered in ${seconds}s, max RSS ${maxRss} MB`);
  await client.cancel();
  await env.close();
  return { maxRss, delivered: delivered.n, produced };
}

const bench: Benchmark = {
  name: "stateless",
  description: "JetStream → map → filter → keyBy(p=2) → sink vs a hand-written consumer; keyed exchange vs raw core NATS; memory under backpressure",
  async run(ctx: BenchContext): Promise<BenchRow[]> {
    const events = Math.round(1_000_000 * ctx.scale);
    const nc = await connect({ servers: ctx.url });
    ctx.log(`filling stream EVENTS with ${events} events...`);
    await fillStream(nc, "EVENTS", events);
    await nc.close();

    // Alternate runs so neither side always gets the warmer machine; report the better of two each.
    const baseline1 = await handWritten(ctx.url, "EVENTS", events);
    const weir1 = await weirPipeline(ctx.url, "EVENTS", events);
    const baseline2 = await handWritten(ctx.url, "EVENTS", events);
    const weir2 = await weirPipeline(ctx.url, "EVENTS", events);
    ctx.log(`pipeline: weir ${weir1}, ${weir2}; hand-written ${baseline1}, ${baseline2} records/s`);

    const exchangeTotal = Math.round(2_000_000 * ctx.scale);
    const raw = Math.max(await rawFrames(ctx.url, exchangeTotal), await rawFrames(ctx.url, exchangeTotal));
    const exchange = Math.max(await keyedExchange(ctx.url, exchangeTotal), await keyedExchange(ctx.url, exchangeTotal));

    const memory = await memoryUnderBackpressure(ctx.url, Math.max(5, Math.round(60 * ctx.scale)), ctx.log);
    return [
      { figure: "JetStream → map → filter → keyBy(p=2) → NATS sink", weir: Math.max(weir1, weir2), baseline: Math.max(baseline1, baseline2), unit: "records/s", goal: ">= 0.8" },
      { figure: "keyed exchange alone (generator → keyBy → count, p=2) vs raw batched core NATS", weir: exchange, baseline: raw, unit: "records/s", goal: ">= 0.25" },
      { figure: "RSS with a sink slowed to 1k records/s and a fast source", weir: memory.maxRss, unit: "MB", goal: "< 300 MB", note: `${memory.delivered} delivered, ${memory.produced} produced` },
    ];
  },
};

export default bench;
