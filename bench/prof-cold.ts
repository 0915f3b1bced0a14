// CPU profile of the async bench's cold-cache keyed count (async.bench.ts, 1.): 100k keys whose state a first
// run wrote to KV, read about once each by a second run with an empty cache. PROFILE=<file> profiles the
// second run: `node --import tsx bench/prof-cold.ts [records]`.
import { writeFileSync } from "node:fs";
import { Session } from "node:inspector/promises";
import * as t from "io-ts";
import { Sources, StreamEnvironment, valueState, type SinkDef } from "../mod.ts";
import { launchNatsServer } from "../runtime/internal.ts";
const count = valueState("count", t.number);
const discard: SinkDef<unknown> = { kind: "discard", createWriter: async () => ({ write: () => {}, flush: async () => {}, close: async () => {} }) };
const keys = Number(process.argv[2] ?? 100_000);
const server = await launchNatsServer();
try {
  for (const round of [0, 1]) {
    const env = StreamEnvironment.create({ name: "prof-cold", nats: server.url, parallelism: 2, mode: "streaming", stateBackend: "jetstream-kv" }, { log: () => {} });
    env.fromSource(Sources.generator({ count: keys, make: (i) => ({ k: `key-${(i * 7919) % keys}` }) }))
      .keyBy((e) => e.k)
      .process({ async processElement(e, c) { const n = ((await c.state(count).value()) ?? 0) + 1; await c.state(count).update(n); c.collect(n); } })
      .sinkTo(discard);
    const session = round === 1 && process.env.PROFILE ? new Session() : undefined;
    session?.connect();
    const heap = process.env.HEAP === "1";
    await session?.post(heap ? "HeapProfiler.enable" : "Profiler.enable");
    await session?.post(heap ? "HeapProfiler.startSampling" : "Profiler.start", (heap ? { samplingInterval: 4096, includeObjectsCollectedByMajorGC: true, includeObjectsCollectedByMinorGC: true } : undefined) as never);
    const t0 = performance.now();
    const c0 = process.cpuUsage();
    await env.execute();
    const ms = performance.now() - t0;
    const c = process.cpuUsage(c0);
    if (session) { const { profile } = await session.post((process.env.HEAP === "1" ? "HeapProfiler.stopSampling" : "Profiler.stop") as "Profiler.stop"); writeFileSync(process.env.PROFILE!, JSON.stringify(profile)); session.disconnect(); }
    await env.close();
    console.log(`round ${round}: ${Math.round(keys / (ms / 1000))} records/s, ${((c.user + c.system) / keys).toFixed(1)} us CPU per record`);
  }
} finally { await server.stop(); }
