// CPU profile of a keyed count on the heap (or KV) backend vs a plain map, in streaming mode, with CPU time
// per record: `node --cpu-prof --import tsx bench/prof-keyed.ts [heap|plain|kv|syncfn|asyncfn|promisefn|floor] [records]`
// (MODE=batch for batch, KEYS=<n> for another number of keys than 10,000, ROUNDS=<n> for more than two rounds).
// Several modes, comma-separated, alternate in each round: on this shared machine the same job's rate moves
// by up to 2x over minutes, so only jobs timed side by side compare.
import * as t from "io-ts";
import { Sources, StreamEnvironment, valueState, type SinkDef } from "../mod.ts";
import { launchNatsServer } from "../runtime/internal.ts";
const count = valueState("count", t.number);
const discard = (): SinkDef<unknown> => ({ kind: "discard", createWriter: async () => ({ write: () => {}, flush: async () => {}, close: async () => {} }) });
const modes = (process.argv[2] ?? "heap").split(",");
const records = Number(process.argv[3] ?? 1_000_000);
const keys = Number(process.env.KEYS ?? 10_000);
const server = await launchNatsServer();
try {
  for (let round = 0; round < Number(process.env.ROUNDS ?? 2); round++) for (const mode of modes) {
    const env = StreamEnvironment.create({ name: `prof-${mode}`, nats: server.url, parallelism: 2, mode: (process.env.MODE ?? "streaming") as "streaming", stateBackend: mode === "kv" ? "jetstream-kv" : "heap", ...(process.env.LIMIT ? { asyncState: { inFlightRecordsLimit: Number(process.env.LIMIT) } } : {}) }, { log: () => {} });
    const src = env.fromSource(Sources.generator({ count: records, make: (i) => ({ k: `key-${(i * 7919) % keys}`, ts: 0 }) })).keyBy((e) => e.k);
    if (mode === "plain") {
      const counts = new Map<string, number>();
      src.map((e) => { const n = (counts.get(e.k) ?? 0) + 1; counts.set(e.k, n); return n; }).sinkTo(discard());
    } else if (mode === "floor") {
      // The least any design runs per record: the async count called, one `then`, nothing else (async.bench.ts;
      // without key order two records of a key in flight lose an update: the counts are not checked here).
      const counts = new Map<string, number>();
      const count = async (e: { k: string }, c: { collect(n: number): void }) => { const n = ((await counts.get(e.k)) ?? 0) + 1; await counts.set(e.k, n); c.collect(n); };
      const fail = (e: unknown) => { console.error(e); process.exit(1); };
      src.map((e) => e).process({ processElement(e, c) { count(e, c).then(undefined, fail); } }).sinkTo(discard());
    } else if (mode === "syncfn" || mode === "asyncfn" || mode === "promisefn") {
      // The keyed operator's own cost: the same count in a JS Map, sync, as an async function with two
      // awaits, or sync but returning a resolved promise (what finishing a record after a promise costs).
      const counts = new Map<string, number>();
      const resolved = Promise.resolve();
      src.process(mode === "syncfn"
        ? { processElement(e, c) { const n = (counts.get(e.k) ?? 0) + 1; counts.set(e.k, n); c.collect(n); } }
        : mode === "promisefn"
          ? { processElement(e, c) { const n = (counts.get(e.k) ?? 0) + 1; counts.set(e.k, n); c.collect(n); return resolved; } }
          : { async processElement(e, c) { const n = ((await counts.get(e.k)) ?? 0) + 1; await counts.set(e.k, n); c.collect(n); } }).sinkTo(discard());
    } else {
      src.process({ async processElement(e, c) { const n = ((await c.state(count).value()) ?? 0) + 1; await c.state(count).update(n); c.collect(n); } }).sinkTo(discard());
    }
    const t0 = performance.now();
    const c0 = process.cpuUsage();
    await env.execute();
    const ms = performance.now() - t0;
    const c = process.cpuUsage(c0);
    await env.close();
    console.log(`${mode} round ${round}: ${Math.round(records / (ms / 1000))} records/s, ${((c.user + c.system) / records).toFixed(2)} us CPU per record`);
  }
} finally { await server.stop(); }
