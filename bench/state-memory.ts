// Child process of `bench state` (memory): writes 1M keys of state to KV, then reads them all in random
// order through a 100k-entry cache, sampling the process RSS. Prints one JSON line.
//   node [--max-old-space-size=N] --expose-gc --import tsx bench/state-memory.ts <nats-url> <scale> <job-suffix>

import { setFlagsFromString } from "node:v8";
import * as t from "io-ts";
import { connect } from "@nats-io/transport-node";
import { JobNames } from "../runtime/internal.ts";
import { createKeyedStateBackend } from "../state/factory.ts";
import { valueState } from "../state/descriptors.ts";
import { KeyGroupRange } from "../state/key-groups.ts";
import { rssMb } from "./harness.ts";
import { driveRecords, uniformKeys } from "./state-driver.ts";

const [url, scaleArg, suffix] = process.argv.slice(2);
// A worker can set V8's heap growth at startup (what `weir run` may do): WEIR_HEAP_GROWING_PERCENT=50.
if (process.env.WEIR_HEAP_GROWING_PERCENT) setFlagsFromString(`--heap-growing-percent=${Number(process.env.WEIR_HEAP_GROWING_PERCENT)}`);
const scale = Number(scaleArg ?? 1);
const keys = Math.round(1_000_000 * scale);
const config = { cacheMaxEntries: Math.round(100_000 * scale) };
const count = valueState("count", t.number);
const keyName = (i: number) => `user-${i}`;
const nc = await connect({ servers: url! });
const open = () => createKeyedStateBackend({
  kind: "jetstream-kv", nc, names: new JobNames(`bench_memory_${suffix}`), keyGroupRange: new KeyGroupRange(0, 127), maxParallelism: 128, config,
});
let peak = rssMb();
const sampler = setInterval(() => { peak = Math.max(peak, rssMb()); }, 100);

const writer = await open();
const t0 = performance.now();
await driveRecords(writer, keys, keyName, async (_key, slot, i) => {
  await slot.state(count).update(i);
}, config);
await writer.close();
const writeMs = Math.round(performance.now() - t0);

const reader = await open();
const order = uniformKeys(keys, keys, 11);
const t1 = performance.now();
let wrong = 0;
await driveRecords(reader, keys, (i) => keyName(order[i]!), async (_key, slot, i) => {
  if ((await slot.state(count).value()) !== order[i]) wrong++;
}, config);
const readMs = Math.round(performance.now() - t1);
const m = reader.metrics();
await reader.close();
clearInterval(sampler);
peak = Math.max(peak, rssMb());
await nc.close();
if (wrong > 0) throw new Error(`memory bench: ${wrong} wrong values read back`);
console.log(JSON.stringify({ keys, writeMs, readMs, peakRssMb: peak, cacheEntries: m.cacheEntries, cacheBytes: m.cacheBytes }));
