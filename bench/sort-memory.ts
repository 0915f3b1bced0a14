// Child process of `bench backlog` (memory): a keyed pass-through over a backlog of `records` records and
// 100k keys with a 64 MB sort budget (runs spill), sampling the process RSS; prints one JSON line.
//   node --import tsx bench/sort-memory.ts <nats-url> <records>
// WEIR_HEAP_GROWING_PERCENT=50 sets V8's heap growth as `weir run` does (bin/weir.mjs).

import { setFlagsFromString } from "node:v8";
import { Sources, StreamEnvironment, type SourceDef } from "../mod.ts";
import { rssMb } from "./harness.ts";

interface Event { k: string; v: number }

if (process.env.WEIR_HEAP_GROWING_PERCENT) setFlagsFromString(`--heap-growing-percent=${Number(process.env.WEIR_HEAP_GROWING_PERCENT)}`);
const [url, recordsArg] = process.argv.slice(2);
const records = Number(recordsArg);
let peak = rssMb();
const sampler = setInterval(() => { peak = Math.max(peak, rssMb()); }, 200);
const env = StreamEnvironment.create({
  name: "backlog-memory", nats: url!, parallelism: 1, stateBackend: "heap",
  checkpointIntervalDuringBacklogMs: 0, backlogSort: { memoryBytes: 64 * 1024 * 1024 },
}, { log: () => {} });
const history = Sources.generator({ count: records, make: (i): Event => ({ k: `key-${(i * 7919) % 100_000}`, v: i % 10 }) }) as SourceDef<Event>;
const live = Sources.array([{ k: "key-1", v: 1 }]) as SourceDef<Event>;
let outputs = 0;
env.fromSource(Sources.hybrid(history, live))
  .keyBy((e) => e.k)
  .process({ processElement(e, c) { c.collect(e.v); } }, { name: "passthrough" })
  .sinkTo({ kind: "count", createWriter: async () => ({ write: () => { outputs++; }, flush: async () => {}, close: async () => {} }) });
const t0 = performance.now();
const result = await env.execute();
const ms = Math.round(performance.now() - t0);
clearInterval(sampler);
await env.close();
const keyed = result.status.subtasks.find((s) => s.name.includes("passthrough"));
const spills = Object.values(keyed?.operators ?? {}).reduce((n, m) => n + (m.sortSpills ?? 0), 0);
if (outputs !== records + 1) throw new Error(`sorted ${outputs} of ${records + 1} records`);
console.log(JSON.stringify({ rss: peak, spills, ms }));
