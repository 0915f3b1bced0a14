// `npm run bench state` (issue 3), at the backend level: state requests are driven through the handles
// in batches of up to 1000 as the async execution controller sends them (bench/state-driver.ts).
// (a) keyed count, 1M events over 100k keys on the KV backend, vs a hand-written service doing
//     kv.get + kv.put per message (on a subset); both checked against the reference counts.
// (b) cold reads: 10k-entry cache over 100k keys, uniform access, vs raw pipelined kv.get (256 in flight).
// (c) warm state (working set fits the cache): KV backend vs heap backend.
// (d) memory: 1M keys of state in KV read through a 100k-entry cache: the process RSS.

import * as t from "io-ts";
import { Kvm } from "@nats-io/kv";
import { connect, type NatsConnection } from "@nats-io/transport-node";
import { JobNames } from "../runtime/names.ts";
import { createKeyedStateBackend } from "../state/factory.ts";
import { createStateHandle } from "../state/handles/create.ts";
import { valueState } from "../state/descriptors.ts";
import { KeyGroupRange } from "../state/key-groups.ts";
import type { KeyedStateBackend } from "../state/contracts.ts";
import type { StateBackendConfig } from "../state/config.ts";
import { rate, rssMb, type BenchContext, type Benchmark, type BenchRow } from "./harness.ts";
import { driveRecords, uniformKeys } from "./state-driver.ts";

const count = valueState("count", t.number);
const MAX_PARALLELISM = 128;

function open(kind: "heap" | "jetstream-kv", nc: NatsConnection, job: string, config: Partial<StateBackendConfig> = {}): Promise<KeyedStateBackend> {
  return createKeyedStateBackend({
    kind, nc, names: new JobNames(job), keyGroupRange: new KeyGroupRange(0, MAX_PARALLELISM - 1), maxParallelism: MAX_PARALLELISM, config,
  });
}

const keyName = (i: number) => `user-${i}`;

/** Keyed count through the handles: read, add one, write. */
async function keyedCount(backend: KeyedStateBackend, keys: string[]): Promise<void> {
  await driveRecords(backend, keys, async (_key, scope, handler) => {
    const c = createStateHandle(count, scope, handler);
    await c.update(((await c.value()) ?? 0) + 1);
  });
}

/** Reads every key through a fresh KV backend and compares with the reference counts. */
async function verifyCounts(nc: NatsConnection, job: string, reference: Map<string, number>): Promise<number> {
  const b = await open("jetstream-kv", nc, job);
  const keys = [...reference.keys()];
  let wrong = 0;
  await driveRecords(b, keys, async (key, scope, handler) => {
    if ((await createStateHandle(count, scope, handler).value()) !== reference.get(key)) wrong++;
  });
  await b.close();
  return wrong;
}

async function benchKeyedCount(ctx: BenchContext, nc: NatsConnection): Promise<BenchRow[]> {
  const events = Math.round(1_000_000 * ctx.scale);
  const keySpace = Math.round(100_000 * ctx.scale);
  const baselineEvents = Math.min(events, Math.round(20_000 * Math.max(ctx.scale, 0.25)));
  const stream = Array.from(uniformKeys(events, keySpace), keyName);

  // weir: batches of up to 1000 requests, write-back, final flush included in the time
  const job = "bench_count";
  const backend = await open("jetstream-kv", nc, job);
  const t0 = performance.now();
  await keyedCount(backend, stream);
  await backend.flush();
  const weirMs = performance.now() - t0;
  const m = backend.metrics();
  await backend.close();
  ctx.log(`keyed count: ${events} events over ${keySpace} keys in ${Math.round(weirMs)} ms; ${m.batches} batches, ${m.remoteReads} remote reads, ${m.remoteWrites} remote writes, ${m.flushes} flushes`);
  const reference = new Map<string, number>();
  for (const k of stream) reference.set(k, (reference.get(k) ?? 0) + 1);
  const wrong = await verifyCounts(nc, job, reference);
  ctx.log(`keyed count: ${reference.size} final counts checked against the reference: ${wrong} wrong`);
  if (wrong > 0) throw new Error(`weir keyed count: ${wrong} wrong counts`);

  // baseline: the hand-written service, kv.get + kv.put per message, on the first events
  const kv = await new Kvm(nc).create("bench_baseline", { history: 1 });
  const b0 = performance.now();
  for (let i = 0; i < baselineEvents; i++) {
    const key = stream[i]!;
    const e = await kv.get(key);
    await kv.put(key, String((e ? Number(e.string()) : 0) + 1));
  }
  const baselineMs = performance.now() - b0;
  const subset = new Map<string, number>();
  for (let i = 0; i < baselineEvents; i++) subset.set(stream[i]!, (subset.get(stream[i]!) ?? 0) + 1);
  let baselineWrong = 0;
  for (const [k, n] of subset) if (Number((await kv.get(k))?.string()) !== n) baselineWrong++;
  ctx.log(`baseline: ${baselineEvents} events in ${Math.round(baselineMs)} ms; ${subset.size} counts checked: ${baselineWrong} wrong`);
  // The same first events through weir give the same counts as the baseline.
  const check = await open("jetstream-kv", nc, "bench_count_subset");
  await keyedCount(check, stream.slice(0, baselineEvents));
  await check.close();
  const subsetWrong = await verifyCounts(nc, "bench_count_subset", subset);
  ctx.log(`weir on the baseline's ${baselineEvents} events: ${subsetWrong} counts differ from the baseline's`);
  return [{ figure: "keyed count, KV backend vs kv.get+kv.put per message", weir: rate(events, weirMs), baseline: rate(baselineEvents, baselineMs), unit: "records/s", goal: ">= 20" }];
}

async function benchColdReads(ctx: BenchContext, nc: NatsConnection): Promise<BenchRow[]> {
  const keySpace = Math.round(100_000 * ctx.scale);
  const reads = Math.round(200_000 * ctx.scale);
  const job = "bench_cold";
  const writer = await open("jetstream-kv", nc, job);
  await driveRecords(writer, Array.from({ length: keySpace }, (_, i) => keyName(i)), async (key, scope, handler) => {
    await createStateHandle(count, scope, handler).update(key.length);
  });
  await writer.close();
  const order = Array.from(uniformKeys(reads, keySpace, 7), keyName);

  const backend = await open("jetstream-kv", nc, job, { cacheMaxEntries: Math.round(10_000 * ctx.scale) });
  let found = 0;
  const t0 = performance.now();
  await driveRecords(backend, order, async (_key, scope, handler) => {
    if ((await createStateHandle(count, scope, handler).value()) !== undefined) found++;
  });
  const weirMs = performance.now() - t0;
  const m = backend.metrics();
  await backend.close();
  if (found !== reads) throw new Error(`cold reads: found ${found} of ${reads}`);
  ctx.log(`cold reads: ${reads} reads in ${Math.round(weirMs)} ms; hits ${m.hits}, misses ${m.misses}, remote reads ${m.remoteReads}, coalesced ${m.coalescedReads}, cache ${m.cacheEntries} entries`);

  // baseline: raw kv.get, 256 in flight, same keys in the same order
  const kv = await new Kvm(nc).open(new JobNames(job).stateBucket);
  const { baseKey } = await import("../state/backends/jetstream-kv/keys.ts");
  const { assignToKeyGroup, canonicalJson } = await import("../state/key-groups.ts");
  const kvKeys = order.map((k) => baseKey({ operator: "count", state: "count", keyGroup: assignToKeyGroup(k, MAX_PARALLELISM), keyId: canonicalJson(k) }));
  let next = 0;
  let baselineFound = 0;
  const b0 = performance.now();
  await Promise.all(Array.from({ length: 256 }, async () => {
    while (next < kvKeys.length) if (await kv.get(kvKeys[next++]!)) baselineFound++;
  }));
  const baselineMs = performance.now() - b0;
  if (baselineFound !== reads) throw new Error(`baseline found ${baselineFound} of ${reads}`);
  return [{ figure: "cold reads (10k cache, 100k keys, uniform) vs raw kv.get 256 in flight", weir: rate(reads, weirMs), baseline: rate(reads, baselineMs), unit: "reads/s", goal: ">= 0.6" }];
}

async function benchWarm(ctx: BenchContext, nc: NatsConnection): Promise<BenchRow[]> {
  const keySpace = Math.round(10_000 * Math.max(ctx.scale, 0.1));
  const events = Math.round(1_000_000 * ctx.scale);
  const stream = Array.from(uniformKeys(events, keySpace, 3), keyName);
  const warmup = Array.from({ length: keySpace }, (_, i) => keyName(i));
  const results: Record<string, number> = {};
  for (const kind of ["heap", "jetstream-kv"] as const) {
    const backend = await open(kind, nc, `bench_warm_${kind === "heap" ? "heap" : "kv"}`);
    await keyedCount(backend, warmup);
    const t0 = performance.now();
    await keyedCount(backend, stream);
    results[kind] = rate(events, performance.now() - t0);
    const m = backend.metrics();
    ctx.log(`warm ${kind}: ${results[kind]} records/s; misses ${m.misses}, remote writes ${m.remoteWrites}`);
    await backend.close();
  }
  return [{ figure: "warm state (10k keys, fits the cache): KV backend vs heap", weir: results["jetstream-kv"]!, baseline: results.heap!, unit: "records/s", goal: ">= 0.75" }];
}

async function benchMemory(ctx: BenchContext, nc: NatsConnection): Promise<BenchRow[]> {
  const keySpace = Math.round(1_000_000 * ctx.scale);
  const job = "bench_memory";
  const config = { cacheMaxEntries: Math.round(100_000 * ctx.scale) };
  const all = Array.from({ length: keySpace }, (_, i) => keyName(i));
  const writer = await open("jetstream-kv", nc, job, config);
  const t0 = performance.now();
  let peak = rssMb();
  await driveRecords(writer, all, async (_key, scope, handler, i) => {
    await createStateHandle(count, scope, handler).update(i);
    if ((i & 0xffff) === 0) peak = Math.max(peak, rssMb());
  });
  await writer.close();
  ctx.log(`memory: wrote ${keySpace} keys in ${Math.round(performance.now() - t0)} ms (peak RSS ${peak} MB)`);
  const reader = await open("jetstream-kv", nc, job, config);
  const order = Array.from(uniformKeys(keySpace, keySpace, 11), keyName);
  const t1 = performance.now();
  await driveRecords(reader, order, async (_key, scope, handler, i) => {
    await createStateHandle(count, scope, handler).value();
    if ((i & 0xffff) === 0) peak = Math.max(peak, rssMb());
  });
  const m = reader.metrics();
  (globalThis as { gc?: () => void }).gc?.();
  const rss = rssMb();
  peak = Math.max(peak, rss);
  ctx.log(`memory: read ${keySpace} keys in ${Math.round(performance.now() - t1)} ms; cache ${m.cacheEntries} entries, ${Math.round(m.cacheBytes / 1048576)} MB accounted; RSS ${rss} MB, peak ${peak} MB`);
  await reader.close();
  return [{ figure: "memory: 1M keys in KV, 100k-entry cache (peak RSS, lower is better)", weir: peak, unit: "MB", goal: "< 400 MB", note: "lower is better" }];
}

const bench: Benchmark = {
  name: "state",
  description: "keyed state on JetStream KV: keyed count vs kv.get+kv.put, cold reads vs raw kv.get, warm vs heap, memory",
  async run(ctx) {
    const nc = await connect({ servers: ctx.url });
    try {
      const only = process.env.WEIR_BENCH_STATE?.split(",");
      const parts: Array<[string, (c: BenchContext, n: NatsConnection) => Promise<BenchRow[]>]> = [
        ["count", benchKeyedCount], ["cold", benchColdReads], ["warm", benchWarm], ["memory", benchMemory],
      ];
      const rows: BenchRow[] = [];
      for (const [name, part] of parts) if (!only || only.includes(name)) rows.push(...(await part(ctx, nc)));
      return rows;
    } finally {
      await nc.close();
    }
  },
};
export default bench;
