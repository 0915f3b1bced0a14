// CPU profile of the warm-state bench's loop (state.bench.ts "warm"): a keyed count over 10k keys that fit
// the cache, heap and KV backends alternated in one process: `node --cpu-prof --import tsx bench/prof-warm.ts
// [rounds]` (KINDS=heap or jetstream-kv for one of them). Prints records/s of each run; the profile shows where the KV backend's extra time per record goes.
import * as t from "io-ts";
import { connect } from "@nats-io/transport-node";
import { JobNames, launchNatsServer } from "../runtime/internal.ts";
import { createKeyedStateBackend } from "../state/factory.ts";
import { valueState } from "../state/descriptors.ts";
import { KeyGroupRange } from "../state/key-groups.ts";
import { driveRecords, uniformKeys } from "./state-driver.ts";

const count = valueState("count", t.number);
const keys = 10_000;
const events = 1_000_000;
const order = uniformKeys(events, keys, 3);
const server = await launchNatsServer();
const nc = await connect({ servers: server.url });
try {
  for (let round = 0; round < Number(process.argv[2] ?? 3); round++) {
    for (const kind of (process.env.KINDS ?? "heap,jetstream-kv").split(",") as Array<"heap" | "jetstream-kv">) {
      const backend = await createKeyedStateBackend({ kind, nc, names: new JobNames(`prof_warm_${kind === "heap" ? "heap" : "kv"}_${round}`), keyGroupRange: new KeyGroupRange(0, 127), maxParallelism: 128, config: {} });
      const run = (n: number, at: (i: number) => string) => driveRecords(backend, n, at, async (_key, slot) => {
        const c = slot.state(count);
        await c.update(((await c.value()) ?? 0) + 1);
      });
      await run(keys, (i) => `user-${i}`);
      const t0 = performance.now();
      await run(events, (i) => `user-${order[i]!}`);
      console.log(`${kind} round ${round}: ${Math.round(events / ((performance.now() - t0) / 1000))} records/s`);
      await backend.close();
    }
  }
} finally {
  await nc.close();
  await server.stop();
}
