// SortedKeysRunner: how a drained batch of sorted backlog keys reaches the state backend: reads that
// must go to KV are sent together (few batches, not one per key), each key's requests apply in the order
// it issued them, and a failing key fails the run. On a real server and KV backend.
import { suite } from "uvu";
import * as assert from "uvu/assert";
import * as t from "io-ts";
import type { NatsConnection } from "@nats-io/transport-node";
import { withServer } from "./helpers/nats-server.ts";
import { valueState } from "../state/descriptors.ts";
import { createStateHandle } from "../state/handles/create.ts";
import { DirectStateRequestHandler } from "../state/handlers/direct.ts";
import type { StateRequestHandler } from "../state/contracts.ts";
import { SortedKeysRunner, type KeyTask } from "../runtime/keyed/backlog/sorted-keys-runner.ts";
import { connectTo, freshJob, openBackend, rejection, scopeOf } from "./state-support.ts";

const s = suite("sorted keys runner");
const server = withServer(s);
let nc: NatsConnection;
s.before(async () => { nc = await connectTo(server.url); });
s.after(async () => { await nc?.close(); });

const total = valueState("total", t.number);
const handle = (h: StateRequestHandler, key: string) => createStateHandle(total, scopeOf(key), h);

/** A bucket that already holds `keys` totals (key i: i), written and flushed by an earlier backend. */
async function populated(keys: number) {
  const names = freshJob("runner");
  const first = await openBackend("jetstream-kv", nc, names);
  const direct = new DirectStateRequestHandler(first);
  for (let i = 0; i < keys; i++) await handle(direct, `k${i}`).update(i);
  await first.close();
  return openBackend("jetstream-kv", nc, names);
}

s("reads that miss the cache go to KV together, each key's requests in the order issued", async () => {
  const keys = 3000;
  const backend = await populated(keys);
  const runner = new SortedKeysRunner(backend, 1000);
  const seen = new Map<string, [number | undefined, number | undefined]>();
  const tasks: KeyTask[] = Array.from({ length: keys }, (_, i) => async (h) => {
    const state = handle(h, `k${i}`);
    // Issued back to back without waiting: the read (a miss, in a batch) must not see the write after
    // it, and the read after the write must.
    const before = state.value();
    const write = state.update(i + 10);
    const after = state.value();
    seen.set(`k${i}`, [await before, await after]);
    await write;
  });
  await runner.run(tasks);
  for (let i = 0; i < keys; i++) assert.equal(seen.get(`k${i}`), [i, i + 10], `key k${i}`);
  const reads = backend.metrics().misses;
  assert.ok(reads >= keys, `every key read from KV once (${reads})`);
  assert.ok(runner.batches <= 12, `${runner.batches} batches for ${keys} keys: reads grouped, not one batch per key`);
  assert.ok(runner.requests >= keys, `${runner.requests} requests went in batches`);
  await backend.close();
});

s("a key whose task fails rejects the run with its error", async () => {
  const backend = await populated(10);
  const runner = new SortedKeysRunner(backend, 1000);
  const tasks: KeyTask[] = Array.from({ length: 10 }, (_, i) => async (h) => {
    const v = await handle(h, `k${i}`).value();
    if (v === 7) throw new Error("bad total 7");
  });
  const e = await rejection(runner.run(tasks));
  assert.match(e.message, "bad total 7");
  await backend.close();
});

s.run();
