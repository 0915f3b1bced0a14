// The JetStream KV backend's own properties: key-group scoping, KV layout, oversize values, large maps,
// a new job's empty bucket, errors and a cancelled job's state, on a real server (write-back, reads and
// eviction: state-kv.test.ts).
import { suite } from "uvu";
import * as assert from "uvu/assert";
import * as t from "io-ts";
import type { NatsConnection } from "@nats-io/transport-node";
import { withServer } from "./helpers/nats-server.ts";
import { createStateHandle } from "../state/handles/create.ts";
import { listState, mapState, valueState } from "../state/descriptors.ts";
import { baseAddress } from "../state/handles/address.ts";
import { StateAccessError, StateLimitError } from "../state/errors.ts";
import { KeyGroupRange, assignToKeyGroup } from "../state/key-groups.ts";
import { parseKey } from "../state/backends/jetstream-kv/keys.ts";
import type { JobNames } from "../runtime/core/names.ts";
import { ensureStateBucket } from "../state/backends/jetstream-kv/open.ts";
import { Sources, StreamEnvironment } from "../mod.ts";
import { collect, connectTo, freshJob, handlesOf, MAX_PARALLELISM, openBackend, RecordingHandler, rejection, scopeOf, stateBucket, stateBucketKeys } from "./state-support.ts";

const s = suite("jetstream-kv state backend: layout");
const server = withServer(s);
let nc: NatsConnection;
s.before(async () => { nc = await connectTo(server.url); });
s.after(async () => { await nc?.close(); });

const count = valueState("count", t.number);
const blob = valueState("blob", t.string);
const bucket = (names: JobNames) => stateBucket(nc, names);
const kvKeys = (names: JobNames) => stateBucketKeys(nc, names);
const handles = handlesOf;

s("key groups: two backends over one bucket never see each other's keys; foreign key groups are refused", async () => {
  const names = freshJob();
  const left = await openBackend("jetstream-kv", nc, names, {}, KeyGroupRange.forOperator(MAX_PARALLELISM, 2, 0));
  const right = await openBackend("jetstream-kv", nc, names, {}, KeyGroupRange.forOperator(MAX_PARALLELISM, 2, 1));
  const keys = Array.from({ length: 200 }, (_, i) => `user-${i}`);
  const owner = (k: string) => (left.keyGroupRange.contains(assignToKeyGroup(k, MAX_PARALLELISM)) ? left : right);
  for (const k of keys) await handles(owner(k))(count, k).update(k.length);
  // The other backend refuses the key outright: a subtask can never read or write another's key group.
  for (const k of keys.slice(0, 20)) {
    const other = owner(k) === left ? right : left;
    const e = await rejection(handles(other)(count, k).value());
    assert.instance(e, StateAccessError);
    assert.match(e.message, /key group \d+ is outside this subtask's key-group range/);
    assert.match(e.message, new RegExp(`"${k}"`));
  }
  await left.close();
  await right.close();
  const stored = await kvKeys(names);
  assert.is(stored.length, 200);
  for (const key of stored) {
    const { keyGroup, keyId } = parseKey(key);
    assert.is(keyGroup, assignToKeyGroup(JSON.parse(keyId), MAX_PARALLELISM), "the key group is part of the KV key");
  }
  // Rescale 2 -> 3: each new subtask finds its keys where they are, no state moved.
  for (let index = 0; index < 3; index++) {
    const range = KeyGroupRange.forOperator(MAX_PARALLELISM, 3, index);
    const b = await openBackend("jetstream-kv", nc, names, {}, range);
    for (const k of keys.filter((k) => range.contains(assignToKeyGroup(k, MAX_PARALLELISM)))) {
      assert.is(await handles(b)(count, k).value(), k.length);
    }
    await b.close();
  }
});

s("layout: one KV key per entry, tokens encoded reversibly", async () => {
  const names = freshJob();
  const b = await openBackend("jetstream-kv", nc, names);
  const state = handles(b);
  await state(count, "user-1").update(1);
  await state(valueState("odd name.*", t.number), { "a b": "ü" }).update(2);
  await state(mapState("m", t.string, t.number), "k").put("x.y", 3);
  await b.close();
  const stored = await kvKeys(names);
  const g = (k: unknown) => assignToKeyGroup(k, MAX_PARALLELISM);
  assert.equal(stored, [
    `op1.count.${g("user-1")}.=22user-1=22`,
    `op1.m.${g("k")}.=22k=22`,
    `op1.m.${g("k")}.=22k=22.=22x=2Ey=22`,
    `op1.odd=20name=2E=2A.${g({ "a b": "ü" })}.=7B=22a=20b=22=3A=22=C3=BC=22=7D`,
  ].sort());
  assert.equal(parseKey(stored.find((k) => k.startsWith("op1.odd"))!), { operator: "op1", state: "odd name.*", keyGroup: g({ "a b": "ü" }), keyId: '{"a b":"ü"}' });
  const kv = await bucket(names);
  assert.equal((await kv.get(`op1.m.${g("k")}.=22k=22`))!.json(), ['"x.y"'], "a map's index lists its keys");
});

s("oversize values: split in chunks above max payload, read back whole; refused above maxValueBytes", async () => {
  const names = freshJob();
  const maxPayload = nc.info!.max_payload;
  const big = "x".repeat(Math.floor(maxPayload * 2.5)) + "end";
  const a = await openBackend("jetstream-kv", nc, names, { maxValueBytes: 4 * maxPayload });
  await handles(a)(blob, "k").update(big);
  await a.close();
  const chunked = await kvKeys(names);
  assert.is(chunked.length, 4, `head + 3 chunks: ${chunked.join(", ")}`);
  const b = await openBackend("jetstream-kv", nc, names, { maxValueBytes: 4 * maxPayload });
  const got = await handles(b)(blob, "k").value();
  assert.is(got?.length, big.length);
  assert.ok(got === big, "read back exactly, not truncated");
  await handles(b)(blob, "k").update("small now");
  await b.flush();
  assert.is((await kvKeys(names)).length, 1, "the old chunks are gone");
  const huge = "y".repeat(5 * maxPayload);
  const e = await rejection(handles(b)(blob, "k2").update(huge));
  assert.instance(e, StateLimitError);
  assert.match(e.message, /state "blob" for key "k2"/);
  assert.match(e.message, /more than maxValueBytes/);
  assert.is(await handles(b)(blob, "k2").value(), undefined);
  // a list that grows past the limit by appends is refused too
  const l = handles(b)(listState("l", t.string), "k");
  await l.add("z".repeat(2 * maxPayload));
  const e2 = await rejection(l.addAll(["z".repeat(2 * maxPayload), "z".repeat(2 * maxPayload)]));
  assert.instance(e2, StateLimitError);
  assert.is((await l.get())?.length, 1);
  await b.close();
});

s("large maps: 5000 entries iterated in bounded pages, also from a cold cache", async () => {
  const names = freshJob();
  const b = await openBackend("jetstream-kv", nc, names);
  const recorder = new RecordingHandler(b);
  const m = createStateHandle(mapState("big", t.number, t.string), scopeOf("k"), recorder, { scanPageSize: 100 });
  const n = 5000;
  await m.putAll(Array.from({ length: n }, (_, i) => [i, `v${i}`] as const));
  recorder.log.length = 0;
  const entries = await collect(m.entries());
  assert.is(entries.length, n);
  const scans = recorder.log.filter((r) => r.type === "scan");
  assert.is(scans.length, n / 100);
  for (const r of scans) {
    assert.is(r.limit, 100);
    assert.ok((r.result as { entries: unknown[] }).entries.length <= 100);
  }
  const expectedOrder = Array.from({ length: n }, (_, i) => String(i)).sort();
  assert.equal(entries.map(([k]) => String(k)), expectedOrder, "ordered by the key's JSON");
  assert.ok(entries.every(([k, v]) => v === `v${k}`));
  await b.close();

  const cold = await openBackend("jetstream-kv", nc, names, { cacheMaxEntries: 300 });
  const coldRecorder = new RecordingHandler(cold);
  const cm = createStateHandle(mapState("big", t.number, t.string), scopeOf("k"), coldRecorder, { scanPageSize: 100 });
  let seen = 0;
  let maxCache = 0;
  for await (const [k, v] of cm.entries()) {
    assert.is(v, `v${k}`);
    seen++;
    maxCache = Math.max(maxCache, cold.metrics().cacheEntries);
  }
  assert.is(seen, n);
  assert.ok(maxCache <= 400, `cache stayed bounded while iterating (max ${maxCache})`);
  assert.is(await cm.isEmpty(), false);
  // iterate and remove every other entry
  for await (const k of cm.keys()) if (k % 2 === 0) await cm.remove(k);
  assert.is((await collect(cm.keys())).length, n / 2);
  await cm.clear();
  assert.is(await cm.isEmpty(), true);
  await cold.close();
  assert.equal(await kvKeys(names), [], "clear removed every entry and the index from KV");
});

s("a new job's empty bucket: misses on keys never written need no KV read; evicted keys are read back", async () => {
  const names = freshJob();
  const b = await openBackend("jetstream-kv", nc, names, { cacheMaxEntries: 100, flushIntervalMs: 0 });
  const state = handles(b);
  assert.ok(b.knownEmpty!(baseAddress("count", scopeOf("first"))) && b.metrics().cacheEntries === 0, "nothing cached, nothing in KV: known empty");
  for (let i = 0; i < 50; i++) assert.is(await state(count, `new${i}`).value(), undefined);
  assert.is(b.metrics().remoteReads, 0, "nothing to read in an empty bucket");
  assert.is(b.metrics().knownAbsent, 50);
  // What the backlog sort asks before folding a reduce's records: known empty, without a read or a cache entry.
  const empty = (key: string) => b.knownEmpty!(baseAddress("count", scopeOf(key)));
  const cached = b.metrics().cacheEntries;
  assert.ok(empty("never-seen") && empty("new3"), "never written: known empty");
  assert.is(b.metrics().cacheEntries, cached, "asking caches nothing");
  await state(count, "written").update(1);
  assert.not.ok(empty("written"), "written: not empty");
  await state(count, "written").clear();
  assert.ok(empty("written"), "deleted: empty again");
  // Written, flushed and partly evicted: those must come back from KV, the rest from the cache.
  for (let i = 0; i < 120; i++) await state(count, `k${i}`).update(i);
  await b.flush();
  assert.ok(b.metrics().evictions > 0, "some written keys left the cache");
  for (let i = 0; i < 120; i++) assert.is(await state(count, `k${i}`).value(), i, `k${i} after eviction`);
  assert.ok(b.metrics().remoteReads > 0, "evicted keys were read from KV");
  await b.close();
  // A bucket with state: a miss is a KV read, even for a key this backend never wrote.
  const again = await openBackend("jetstream-kv", nc, names);
  const unsure = again.knownEmpty!(baseAddress("count", scopeOf("never-written-either")));
  assert.is(await handles(again)(count, "never-written").value(), undefined);
  assert.is(again.metrics().remoteReads, 1);
  assert.not.ok(unsure, "a bucket with state: a key not in the cache is not known empty (it may be in KV)");
  assert.is(again.metrics().knownAbsent, 0);
  await again.close();
});

s("errors: corrupt KV content, closed backend", async () => {
  const names = freshJob();
  // Written before the backend opens (it owns its key groups: a running one does not expect other writers).
  await ensureStateBucket(nc, names.stateBucket);
  const kv = await bucket(names);
  await kv.put(`op1.count.${assignToKeyGroup("bad", MAX_PARALLELISM)}.=22bad=22`, "not json{");
  const b = await openBackend("jetstream-kv", nc, names);
  const e = await rejection(handles(b)(count, "bad").value());
  assert.instance(e, StateAccessError);
  assert.match(e.message, /does not hold JSON/);
  await b.close();
  const e2 = await rejection(handles(b)(count, "x").value());
  assert.match(e2.message, /closed/);
});

s("a job without checkpoints, cancelled: its buffered state is in KV once cancel resolves, before env.close() closes the connection", async () => {
  const names = freshJob();
  const KEYS = 50_000;
  const env = StreamEnvironment.create({ name: names.job, nats: server.url, parallelism: 2, mode: "streaming", stateBackend: "jetstream-kv", checkpointIntervalMs: 0 }, { log: () => {} });
  const last = new Map<string, number>();
  env.fromSource(Sources.generator({ make: (i) => ({ k: `k${i % KEYS}` }) }))
    .keyBy((e) => e.k)
    .process<{ k: string; n: number }>({
      async processElement(e, c) {
        const n = ((await c.state(count).value()) ?? 0) + 1;
        await c.state(count).update(n);
        c.collect({ k: e.k, n });
      },
    })
    .sinkTo({ kind: "last-counts", createWriter: async () => ({ write: (o: { k: string; n: number }) => { last.set(o.k, o.n); }, flush: async () => {}, close: async () => {} }) });
  const client = await env.executeAsync();
  try {
    // Every key counted a few times: its state is dirty in the cache (the flush timer is 10 s away).
    const deadline = Date.now() + 60_000;
    while (!(last.size === KEYS && (last.get("k0") ?? 0) >= 2)) {
      if (Date.now() > deadline) throw new Error(`only ${last.size} keys counted`);
      await new Promise((r) => setTimeout(r, 20));
    }
  } finally {
    await client.cancel();
    await env.close();
  }
  const kv = await bucket(names);
  const stored = new Map<string, string>();
  for await (const key of await kv.keys()) stored.set(JSON.parse(parseKey(key).keyId) as string, key);
  assert.is(stored.size, KEYS, "every key's count is in KV");
  // Each key's count at least what the sink saw last (a sample: one read per key would take long).
  for (let i = 0; i < KEYS; i += 97) {
    const k = `k${i}`;
    const n = Number((await kv.get(stored.get(k)!))!.string());
    assert.ok(n >= last.get(k)!, `key ${k}: ${n} in KV, ${last.get(k)} emitted`);
  }
});

s.run();
