// CPU profile of the backlog bench's keyed process case (hybrid source with unbounded live input, KV): `node --cpu-prof --import tsx
// bench/prof-backlog.ts [sorted|streamed] [records] [keys] [process|reduce]`; prints the backlog phase and CPU per record.
// PROFILE=<file>: a CPU profile of the backlog phase alone (from the first record made), without --cpu-prof;
// HEAP_PROFILE=<file>: instead, a sampling profile of what the phase allocates (collected objects included).
import { writeFileSync } from "node:fs";
import { Session } from "node:inspector/promises";
import * as t from "io-ts";
import { Sources, StreamEnvironment, valueState, type SourceDef } from "../mod.ts";
import { launchNatsServer } from "../runtime/internal.ts";
interface Event { k: string; v: number }
const sum = valueState("sum", t.number);
const sorted = (process.argv[2] ?? "sorted") === "sorted";
const records = Number(process.argv[3] ?? 200_000);
const keys = Number(process.argv[4] ?? 20_000);
const reduce = process.argv[5] === "reduce";
const server = await launchNatsServer();
try {
  const env = StreamEnvironment.create({ name: `prof-backlog-${sorted}`, nats: server.url, parallelism: 2, stateBackend: "jetstream-kv", mode: sorted ? "automatic" : "streaming", ...(process.env.NODEBLOAT ? { bufferDebloatTargetMs: 0 } : {}), ...(process.env.CACHE ? { state: { cacheMaxEntries: Number(process.env.CACHE) } } : {}), ...(process.env.SORT_MB ? { backlogSort: { memoryBytes: Number(process.env.SORT_MB) * 1048576 } } : {}) }, { log: () => {} });
  let outputs = 0;
  const sums = new Float64Array(keys);
  if (reduce) for (let i = 0; i < records; i++) sums[(i * 7919) % keys]! += i % 10;
  const heap = process.env.HEAP_PROFILE;
  const session = process.env.PROFILE || heap ? new Session() : undefined;
  session?.connect();
  let profiling: Promise<unknown> | undefined;
  const history = Sources.generator({ count: records, make: (i): Event => (profiling ??= (heap
    ? session?.post("HeapProfiler.enable").then(() => session.post("HeapProfiler.startSampling", { samplingInterval: 4096, includeObjectsCollectedByMajorGC: true, includeObjectsCollectedByMinorGC: true } as never))
    : session?.post("Profiler.enable").then(() => session.post("Profiler.start"))) ?? Promise.resolve(), { k: `key-${(i * 7919) % keys}`, v: i % 10 }) }) as SourceDef<Event>;
  const live = Sources.generator({ ratePerSec: 1000, make: (i): Event => ({ k: `key-${i % keys}`, v: 1 }) }) as SourceDef<Event>;
  const keyed = env.fromSource(Sources.hybrid(history, live)).keyBy((e) => e.k);
  // A reduce emits a key's result once in a sorted backlog: count outputs until every key showed its backlog sum.
  const done = new Uint8Array(keys);
  let reached = 0;
  (reduce
    ? keyed.reduce((a, b) => ({ k: a.k, v: a.v + b.v }))
    : keyed.process<Event>({ async processElement(e, c) { const v = ((await c.state(sum).value()) ?? 0) + e.v; await c.state(sum).update(v); c.collect({ k: e.k, v }); } }))
    .sinkTo({ kind: "count", createWriter: async () => ({ write: (e: Event) => {
    if (!reduce) return void outputs++;
    const n = Number(e.k.slice(4));
    if (e.v >= sums[n]! && done[n] === 0) { done[n] = 1; if (++reached === keys) outputs = records; }
  }, flush: async () => {}, close: async () => {} }) }, { parallelism: 1 });
  const t0 = performance.now();
  const c0 = process.cpuUsage();
  const client = await env.executeAsync();
  while (outputs < records) await new Promise((r) => setTimeout(r, 20));
  const c = process.cpuUsage(c0);
  if (session) {
    await profiling;
    const { profile } = heap ? await session.post("HeapProfiler.stopSampling") : await session.post("Profiler.stop");
    writeFileSync(heap ?? process.env.PROFILE!, JSON.stringify(profile));
    session.disconnect();
  }
  const kv = { reads: 0, writes: 0 };
  for (const s of client.status().subtasks) for (const m of Object.values(s.operators ?? {})) { kv.reads += m.stateRemoteReads ?? 0; kv.writes += m.stateRemoteWrites ?? 0; }
  console.log(`${sorted ? "sorted" : "streamed"}: ${outputs} outputs, ${Math.round(performance.now() - t0)} ms, ${((c.user + c.system) / records).toFixed(2)} us CPU per record, KV reads ${kv.reads}, writes ${kv.writes}`);
  await client.cancel();
  await env.close();
} finally { await server.stop(); }
