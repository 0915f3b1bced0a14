// The JetStream KV backend's own properties: write-back, read coalescing, pipelined misses and cache
// eviction, on a real server (key groups, layout, large values and maps: state-kv-layout.test.ts).
import { suite } from "uvu";
import * as assert from "uvu/assert";
import * as t from "io-ts";
import type { NatsConnection } from "@nats-io/transport-node";
import { withServer } from "./helpers/nats-server.ts";
import { valueState } from "../state/descriptors.ts";
import { createStateHandle } from "../state/handles/create.ts";
import { assignToKeyGroup } from "../state/key-groups.ts";
import { BatchingStateRequestHandler } from "../state/handlers/batching.ts";
import type { JobNames } from "../runtime/core/names.ts";
import type { JetStreamKvStateBackend } from "../state/backends/jetstream-kv/backend.ts";
import { AsyncExecutionController } from "../runtime/keyed/async/controller.ts";
import { systemClock } from "../runtime/core/clock.ts";
import { connectTo, freshJob, handlesOf, MAX_PARALLELISM, openBackend, scopeOf, stateBucket, stateBucketKeys } from "./state-support.ts";

const s = suite("jetstream-kv state backend");
const server = withServer(s);
let nc: NatsConnection;
s.before(async () => { nc = await connectTo(server.url); });
s.after(async () => { await nc?.close(); });

const count = valueState("count", t.number);
const bucket = (names: JobNames) => stateBucket(nc, names);
const kvKeys = (names: JobNames) => stateBucketKeys(nc, names);
const handles = handlesOf;

s("write-back: updates stay local until flush; after flush a new backend instance reads them", async () => {
  const names = freshJob();
  const a = await openBackend("jetstream-kv", nc, names, { flushIntervalMs: 0 });
  const state = handles(a);
  for (let i = 0; i < 200; i++) await state(count, `k${i % 50}`).update(i);
  assert.is(a.metrics().remoteWrites, 0, "no KV write before flush");
  assert.is(a.metrics().dirtyEntries, 50);
  assert.equal(await kvKeys(names), [], "KV is still empty");
  await a.flush();
  assert.is(a.metrics().dirtyEntries, 0);
  assert.is(a.metrics().remoteWrites, 50, "one write per dirty key, not per update");
  assert.is((await kvKeys(names)).length, 50);
  await a.close();
  const b = await openBackend("jetstream-kv", nc, names);
  const fresh = handles(b);
  for (let k = 0; k < 50; k++) assert.is(await fresh(count, `k${k}`).value(), 150 + k);
  assert.is(b.metrics().remoteReads, 50);
  await b.close();
});

s("write-back: the flush timer and the dirty budget write without an explicit flush", async () => {
  const names = freshJob();
  const timed = await openBackend("jetstream-kv", nc, names, { flushIntervalMs: 50 });
  await handles(timed)(count, "x").update(1);
  const deadline = Date.now() + 3000;
  while ((await bucket(names).then((kv) => kv.get(`op1.count.${assignToKeyGroup("x", MAX_PARALLELISM)}.=22x=22`)))?.string() !== "1") {
    assert.ok(Date.now() < deadline, "the timer flushed within 3 s");
    await new Promise((r) => setTimeout(r, 20));
  }
  await timed.close();

  const budget = await openBackend("jetstream-kv", nc, freshJob(), { flushIntervalMs: 0, dirtyMaxEntries: 20 });
  const state = handles(budget);
  let maxDirty = 0;
  for (let i = 0; i < 300; i++) {
    await state(count, `k${i}`).update(i);
    maxDirty = Math.max(maxDirty, budget.metrics().dirtyEntries);
  }
  assert.ok(budget.metrics().remoteWrites > 0, "over budget, it flushed by itself");
  assert.ok(maxDirty <= 41, `dirty entries stayed bounded (max ${maxDirty}, budget 20, hard limit 40)`);
  await budget.close();
});

s("write-back over budget writes the oldest dirty entries and keeps the newest in memory (as Kafka Streams' cache); flush writes the rest", async () => {
  const names = freshJob();
  const a = await openBackend("jetstream-kv", nc, names, { flushIntervalMs: 0, dirtyMaxEntries: 100 });
  const state = handles(a);
  for (let i = 0; i < 150; i++) await state(count, `k${i}`).update(i);
  const deadline = Date.now() + 10_000;
  while (a.metrics().dirtyEntries > 100) {
    assert.ok(Date.now() < deadline, `within the budget again in 10 s (${a.metrics().dirtyEntries} dirty)`);
    await new Promise((r) => setTimeout(r, 20));
  }
  assert.ok(a.metrics().dirtyEntries >= 90, `the newest entries stay dirty: ${a.metrics().dirtyEntries} of 150 (a tenth of the budget written free)`);
  assert.ok(a.metrics().remoteWrites <= 60, `${a.metrics().remoteWrites} writes for 150 keys over a budget of 100`);
  const before = await openBackend("jetstream-kv", nc, names);
  assert.is(await handles(before)(count, "k0").value(), 0, "the oldest key reached KV");
  assert.is(await handles(before)(count, "k149").value(), undefined, "the newest key is still only in memory");
  await before.close();
  await a.flush();
  await a.close();
  const after = await openBackend("jetstream-kv", nc, names);
  for (const i of [0, 75, 149]) assert.is(await handles(after)(count, `k${i}`).value(), i, `k${i} in KV after flush`);
  await after.close();
});

s("write-back: the dirty budget holds back the async execution controller's records (backpressure), not only direct callers", async () => {
  const names = freshJob();
  // A cache smaller than the key space: puts go through batches, whose requests must wait for the flush.
  const backend = await openBackend("jetstream-kv", nc, names, { flushIntervalMs: 0, cacheMaxEntries: 100, dirtyMaxEntries: 200 });
  const aec = new AsyncExecutionController(
    backend, { bufferSize: 100, bufferTimeoutMs: 5, inFlightRecordsLimit: 50, watermarkMode: "strict" }, systemClock,
    (e) => { throw e; },
  );
  let maxDirty = 0;
  const keys = 5000;
  for (let i = 0; i < keys; i++) {
    const scope = scopeOf(`k${i}`);
    const p = aec.submitRecord(scope.keyId, scope.key, { run: (r) => createStateHandle(count, scope, r).update(i) });
    maxDirty = Math.max(maxDirty, backend.metrics().dirtyEntries);
    if (p) await p;
  }
  await aec.drain();
  aec.close();
  assert.ok(maxDirty <= 2 * 200 + 50 + 100, `dirty entries bounded by twice the budget plus what is in flight (max ${maxDirty})`);
  await backend.close();
  const reader = await openBackend("jetstream-kv", nc, names);
  const state = handles(reader);
  for (const i of [0, 1234, keys - 1]) assert.is(await state(count, `k${i}`).value(), i, `k${i} reached KV`);
  await reader.close();
});

s("sync mode: a request issued while an earlier one of the same handler waits for KV does not overtake it", async () => {
  const names = freshJob();
  const a = await openBackend("jetstream-kv", nc, names, { flushIntervalMs: 0 });
  await handles(a)(count, "k").update(1);
  await a.close();
  const b = await openBackend("jetstream-kv", nc, names, { flushIntervalMs: 0 });
  try {
    const h = handles(b)(count, "k"); // one DirectStateRequestHandler, as one sync-mode record uses
    const read = h.value(); // not cached: goes to KV in a batch
    const write = h.update(2); // issued before the read returned: must apply after it
    assert.is(await read, 1, "the read sees the state before the later write");
    await write;
    assert.is(await h.value(), 2);
  } finally {
    await b.close();
  }
});

s("read coalescing: concurrent reads of one key cost one remote read", async () => {
  const names = freshJob();
  const w = await openBackend("jetstream-kv", nc, names);
  await handles(w)(count, "hot").update(99);
  await w.close();

  const b = await openBackend("jetstream-kv", nc, names);
  const direct = handles(b);
  const values = await Promise.all(Array.from({ length: 50 }, () => direct(count, "hot").value()));
  assert.ok(values.every((v) => v === 99));
  const m = b.metrics();
  assert.is(m.remoteReads, 1);
  assert.is(m.misses, 1);
  assert.is(m.coalescedReads, 49);
  await b.close();

  // In one batch, and across two batches in flight: still one read per key.
  const c = await openBackend("jetstream-kv", nc, names);
  const batching = new BatchingStateRequestHandler(c, 100);
  const batched = handles(c, batching);
  const reads = Array.from({ length: 150 }, () => batched(count, "hot").value());
  await batching.drain();
  assert.ok((await Promise.all(reads)).every((v) => v === 99));
  assert.is(batching.batches, 2);
  assert.is(c.metrics().remoteReads, 1);
  await c.close();
});

s("pipelined misses: a batch of 1000 requests with 600 distinct missing keys reads them in one wave", async () => {
  const names = freshJob();
  const w = await openBackend("jetstream-kv", nc, names);
  const wh = new BatchingStateRequestHandler(w, 1000);
  const writes = Array.from({ length: 600 }, (_, i) => handles(w, wh)(count, `m${i}`).update(i));
  await wh.drain();
  await Promise.all(writes);
  await w.close();
  const b = await openBackend("jetstream-kv", nc, names, { getConcurrency: 1024 });
  const batching = new BatchingStateRequestHandler(b, 1000);
  const reads = Array.from({ length: 1000 }, (_, i) => handles(b, batching)(count, `m${i % 600}`).value());
  assert.is(batching.batches, 1, "one batch of 1000");
  const values = await Promise.all(reads);
  assert.ok(values.every((v, i) => v === i % 600));
  const m = b.metrics();
  assert.is(m.remoteReads, 600, "one read per distinct key");
  assert.is((b as JetStreamKvStateBackend).peakReadsInFlight, 600, "all 600 in flight together");
  await b.close();
});

// A handle's address keeps the key's cache entry (no lookup per request): once that entry is evicted and
// another handle of the key made a new one, the first must not read or write the old one.
s("cache eviction: two handles of one key agree after its entry was evicted and made again", async () => {
  const b = await openBackend("jetstream-kv", nc, freshJob(), { cacheMaxEntries: 2, flushIntervalMs: 0 });
  try {
    const state = handles(b);
    const a = state(count, "k");
    const other = state(count, "k");
    await a.update(1);
    assert.is(await other.value(), 1);
    const evictions = async () => {
      const before = b.metrics().evictions;
      for (let i = 0; i < 5; i++) await state(count, `filler-${i}`).update(i);
      await b.flush();
      assert.ok(b.metrics().evictions > before, "the key's entry was evicted");
    };
    const fresh = () => state(count, "k").value();
    await evictions();
    await other.update(2);
    assert.is(await a.value(), 2, "a read through the first handle sees the second's write");
    assert.is(await fresh(), 2, "and so does a handle made afterwards");
    await evictions();
    await a.update(3);
    assert.is(await other.value(), 3);
    assert.is(await fresh(), 3);
    await evictions();
    assert.is(await a.value(), 3, "read back from KV");
    await other.update(4);
    assert.is(await a.value(), 4);
    await evictions();
    assert.is(await fresh(), 4);
  } finally {
    await b.close();
  }
});

s("cache eviction: bounded entries, correct reads after eviction, evicted keys read again from KV", async () => {
  const names = freshJob();
  const b = await openBackend("jetstream-kv", nc, names, { cacheMaxEntries: 100, flushIntervalMs: 0 });
  const state = handles(b);
  let maxEntries = 0;
  for (let i = 0; i < 1000; i++) {
    await state(count, `k${i}`).update(i * 2);
    maxEntries = Math.max(maxEntries, b.metrics().cacheEntries);
  }
  await b.flush();
  assert.ok(b.metrics().cacheEntries <= 100, `cache holds ${b.metrics().cacheEntries} entries, bound 100`);
  const order = Array.from({ length: 1000 }, (_, i) => (i * 7919) % 1000);
  for (const i of order) {
    assert.is(await state(count, `k${i}`).value(), i * 2, `k${i}`);
    maxEntries = Math.max(maxEntries, b.metrics().cacheEntries);
  }
  const m = b.metrics();
  assert.ok(m.evictions >= 900, `evicted ${m.evictions}`);
  assert.ok(m.remoteReads >= 900, `read ${m.remoteReads} from KV`);
  assert.ok(maxEntries <= 201, `entries stayed bounded (max ${maxEntries})`);
  const before = b.metrics().remoteReads;
  assert.is(await state(count, `k${order[0]}`).value(), order[0]! * 2);
  assert.is(b.metrics().remoteReads, before + 1, "a key evicted long ago is read again");
  const hot = `k${order[999]}`;
  const again = b.metrics().remoteReads;
  await state(count, hot).value();
  assert.is(b.metrics().remoteReads, again, "a recently read key is a hit");
  // Bytes bound too.
  const small = await openBackend("jetstream-kv", nc, names, { cacheMaxBytes: 20_000, flushIntervalMs: 0 });
  const st = handles(small);
  for (let i = 0; i < 300; i++) assert.is(await st(count, `k${i}`).value(), i * 2);
  assert.ok(small.metrics().cacheBytes <= 20_000, `cache bytes ${small.metrics().cacheBytes} within 20000`);
  await small.close();
  await b.close();
});

s.run();
