// Parity: the heap and JetStream KV backends give the same answers to the same randomized operation
// sequences, sequential (sync mode) and in concurrent batches (as the async execution controller sends
// them), with a KV cache small enough that entries are evicted, flushed and read back all the time.
import { suite } from "uvu";
import * as assert from "uvu/assert";
import * as t from "io-ts";
import fc from "fast-check";
import type { NatsConnection } from "@nats-io/transport-node";
import { withServer } from "./helpers/nats-server.ts";
import { aggregatingState, listState, mapState, reducingState, valueState } from "../state/descriptors.ts";
import { createStateHandle } from "../state/handles/create.ts";
import { DirectStateRequestHandler } from "../state/handlers/direct.ts";
import { BatchingStateRequestHandler } from "../state/handlers/batching.ts";
import type { KeyedStateBackend, StateRequestHandler, StateSnapshot } from "../state/contracts.ts";
import { createKeyedStateBackend } from "../state/factory.ts";
import { collect, connectTo, freshJob, FULL_RANGE, openBackend, scopeOf } from "./state-support.ts";

const s = suite("state backend parity");
const server = withServer(s);
let nc: NatsConnection;
s.before(async () => { nc = await connectTo(server.url); });
s.after(async () => { await nc?.close(); });

const value = valueState("v", t.union([t.number, t.null]));
const list = listState("l", t.string);
const map = mapState("m", t.union([t.string, t.number]), t.number);
const reducing = reducingState("r", t.number, (a, b) => a * 31 + b);
const aggregating = aggregatingState("a", t.array(t.number), {
  createAccumulator: () => [] as number[],
  add: (v: number, acc: number[]) => [...acc, v].slice(-3),
  getResult: (acc) => acc.join(","),
});

const key = fc.constantFrom<unknown>("a", "b", 1, { id: 2 }, "x.y z");
const mapKey = fc.constantFrom<string | number>("k1", "k2", 3, "k.4", "ü");
type Op =
  | { op: "vget" | "lget" | "mentries" | "misEmpty" | "mclear" | "rget" | "aget" | "lclear" | "flush"; key: unknown }
  | { op: "vset"; key: unknown; v: number | null | undefined }
  | { op: "ladd"; key: unknown; v: string }
  | { op: "laddAll" | "lupdate"; key: unknown; vs: string[] }
  | { op: "mget" | "mremove" | "mcontains"; key: unknown; mk: string | number }
  | { op: "mput"; key: unknown; mk: string | number; v: number }
  | { op: "radd" | "aadd"; key: unknown; v: number };
const small = fc.integer({ min: -50, max: 50 });
const opArb: fc.Arbitrary<Op> = fc.oneof(
  fc.record({ op: fc.constantFrom("vget", "lget", "mentries", "misEmpty", "mclear", "rget", "aget", "lclear", "flush" as const), key }),
  fc.record({ op: fc.constant("vset" as const), key, v: fc.option(small, { nil: undefined }).map((v) => (v === 0 ? null : v)) }),
  fc.record({ op: fc.constant("ladd" as const), key, v: fc.string({ maxLength: 4 }) }),
  fc.record({ op: fc.constantFrom("laddAll", "lupdate" as const), key, vs: fc.array(fc.string({ maxLength: 3 }), { maxLength: 3 }) }),
  fc.record({ op: fc.constantFrom("mget", "mremove", "mcontains" as const), key, mk: mapKey }),
  fc.record({ op: fc.constant("mput" as const), key, mk: mapKey, v: small }),
  fc.record({ op: fc.constantFrom("radd", "aadd" as const), key, v: small }),
) as fc.Arbitrary<Op>;

/** Runs one operation through the handles; returns what a user would observe. */
function run(op: Op, handler: StateRequestHandler, backend: KeyedStateBackend): Promise<unknown> {
  const h = <D extends Parameters<typeof createStateHandle>[0]>(d: D) => createStateHandle(d, scopeOf(op.key), handler, { scanPageSize: 2 });
  switch (op.op) {
    case "vget": return h(value).value();
    case "vset": return h(value).update(op.v);
    case "lget": return h(list).get();
    case "ladd": return h(list).add(op.v);
    case "laddAll": return h(list).addAll(op.vs);
    case "lupdate": return h(list).update(op.vs);
    case "lclear": return h(list).clear();
    case "mget": return h(map).get(op.mk);
    case "mput": return h(map).put(op.mk, op.v);
    case "mremove": return h(map).remove(op.mk);
    case "mcontains": return h(map).contains(op.mk);
    case "mentries": return collect(h(map).entries());
    case "misEmpty": return h(map).isEmpty();
    case "mclear": return h(map).clear();
    case "radd": return h(reducing).add(op.v);
    case "rget": return h(reducing).get();
    case "aadd": return h(aggregating).add(op.v);
    case "aget": return h(aggregating).get();
    case "flush": return backend.flush();
  }
}

/** Everything stored for the keys the generators use. */
async function dump(handler: StateRequestHandler): Promise<unknown[]> {
  const out: unknown[] = [];
  for (const k of ["a", "b", 1, { id: 2 }, "x.y z"]) {
    const h = <D extends Parameters<typeof createStateHandle>[0]>(d: D) => createStateHandle(d, scopeOf(k), handler);
    out.push(await h(value).value(), await h(list).get(), await collect(h(map).entries()), await h(reducing).get(), await h(aggregating).get());
  }
  return out;
}

const KV_CONFIG = { cacheMaxEntries: 4, dirtyMaxEntries: 3, flushIntervalMs: 0 };

s("sequential (sync mode): same results op by op, and the same state read back by a fresh KV backend", async () => {
  await fc.assert(fc.asyncProperty(fc.array(opArb, { minLength: 1, maxLength: 80 }), async (ops) => {
    const names = freshJob("par");
    const heap = await openBackend("heap", nc, names);
    const kv = await openBackend("jetstream-kv", nc, names, KV_CONFIG);
    const hh = new DirectStateRequestHandler(heap);
    const kh = new DirectStateRequestHandler(kv);
    for (const [i, op] of ops.entries()) {
      const expected = await run(op, hh, heap);
      const got = await run(op, kh, kv);
      assert.equal(got, expected, `op ${i} ${JSON.stringify(op)}`);
    }
    await kv.close();
    const fresh = await openBackend("jetstream-kv", nc, names);
    assert.equal(await dump(new DirectStateRequestHandler(fresh)), await dump(hh), "state after a restart");
    await fresh.close();
    await heap.close();
  }), { numRuns: Number(process.env.WEIR_PARITY_RUNS ?? 40) });
});

s("concurrent batches (async mode): the same results when many requests share a batch", async () => {
  // Single-request operations only: each one's effect is fixed by its position in the batch.
  const single = opArb.filter((o) => ["vget", "vset", "lget", "ladd", "laddAll", "lupdate", "lclear", "mget", "mput", "mremove", "mcontains", "misEmpty", "mclear"].includes(o.op));
  await fc.assert(fc.asyncProperty(fc.array(fc.array(single, { minLength: 1, maxLength: 30 }), { minLength: 1, maxLength: 6 }), async (rounds) => {
    const names = freshJob("parb");
    const heap = await openBackend("heap", nc, names);
    const kv = await openBackend("jetstream-kv", nc, names, KV_CONFIG);
    const hb = new BatchingStateRequestHandler(heap, 7);
    const kb = new BatchingStateRequestHandler(kv, 7);
    for (const round of rounds) {
      const expected = round.map((op) => run(op, hb, heap));
      const got = round.map((op) => run(op, kb, kv));
      await Promise.all([hb.drain(), kb.drain()]);
      assert.equal(await Promise.all(got), await Promise.all(expected), JSON.stringify(round));
    }
    await kv.close();
    const fresh = await openBackend("jetstream-kv", nc, names);
    assert.equal(await dump(new DirectStateRequestHandler(fresh)), await dump(new DirectStateRequestHandler(heap)));
    await fresh.close();
    await heap.close();
  }), { numRuns: Number(process.env.WEIR_PARITY_RUNS ?? 30) });
});

s("a key too long for a KV key is refused by both backends, with the same one line (a job passing on the heap does not fail on KV)", async () => {
  const names = freshJob("parlong");
  const heap = await openBackend("heap", nc, names);
  const kv = await openBackend("jetstream-kv", nc, names, KV_CONFIG);
  try {
    const refusals = async (backend: KeyedStateBackend) => {
      const handler = new DirectStateRequestHandler(backend);
      const long = scopeOf("k".repeat(3000));
      const out: string[] = [];
      for (const attempt of [
        () => createStateHandle(value, long, handler).update(1),
        () => createStateHandle(map, scopeOf("short"), handler).put("u".repeat(3000), 1),
      ]) {
        try { await attempt(); out.push("stored"); } catch (e) { out.push((e as Error).message); }
      }
      return out;
    };
    const fromHeap = await refusals(heap);
    assert.equal(fromHeap, await refusals(kv));
    assert.match(fromHeap[0]!, /^state "v" for key "kkk.*: the encoded key is \d+ characters, more than the 2048 a KV key may have$/);
    assert.match(fromHeap[1]!, /more than the 2048 a KV key may have$/);
    // Keys within the limit are stored by both.
    const ok = async (backend: KeyedStateBackend) => { await createStateHandle(value, scopeOf("k".repeat(1000)), new DirectStateRequestHandler(backend)).update(2); return "stored"; };
    assert.is(await ok(heap), await ok(kv));
  } finally {
    await heap.close();
    await kv.close();
  }
});

s("a value over maxValueBytes, or not storable as JSON, is refused by both backends with the same one line, and changes nothing", async () => {
  const names = freshJob("parbig");
  const limits = { maxValueBytes: 1000 };
  const heap = await openBackend("heap", nc, names, limits);
  const kv = await openBackend("jetstream-kv", nc, names, { ...KV_CONFIG, ...limits });
  const blob = valueState("blob", t.unknown);
  const blobs = mapState("blobs", t.string, t.string);
  const lines = listState("lines", t.string);
  try {
    const outcomes = async (backend: KeyedStateBackend) => {
      const handler = new DirectStateRequestHandler(backend);
      const out: string[] = [];
      const attempt = async (write: () => Promise<void>) => {
        try { await write(); out.push("stored"); } catch (e) { out.push((e as Error).message); }
      };
      await attempt(() => createStateHandle(blob, scopeOf("a"), handler).update("x".repeat(900)));
      await attempt(() => createStateHandle(blob, scopeOf("a"), handler).update("y".repeat(2000)));
      await attempt(() => createStateHandle(blob, scopeOf("b"), handler).update({ n: 1n }));
      await attempt(() => createStateHandle(blobs, scopeOf("c"), handler).put("u", "z".repeat(2000)));
      await attempt(() => createStateHandle(lines, scopeOf("d"), handler).add("l".repeat(600)));
      await attempt(() => createStateHandle(lines, scopeOf("d"), handler).add("m".repeat(600)));
      const stored = await createStateHandle(blob, scopeOf("a"), handler).value();
      const list = await createStateHandle(lines, scopeOf("d"), handler).get();
      out.push(`a: ${String(stored).length} ${String(stored)[0]}; c: ${await createStateHandle(blobs, scopeOf("c"), handler).get("u")}; d: ${list?.length}`);
      return out;
    };
    const fromHeap = await outcomes(heap);
    assert.equal(fromHeap, await outcomes(kv));
    assert.equal(fromHeap[0], "stored");
    assert.match(fromHeap[1]!, /^state "blob" for key "a": the value is 2002 bytes, more than maxValueBytes 1000; it was not stored$/);
    assert.match(fromHeap[2]!, /^state "blob" for key "b": the value cannot be stored as JSON/);
    assert.match(fromHeap[3]!, /^state "blobs" for key "c" \(map key .*\): the value is 2002 bytes, more than maxValueBytes 1000/);
    assert.equal(fromHeap[4], "stored");
    assert.match(fromHeap[5]!, /^state "lines" for key "d": the value is \d+ bytes, more than maxValueBytes 1000/);
    assert.equal(fromHeap[6], "a: 900 x; c: undefined; d: 1");
  } finally {
    await heap.close();
    await kv.close();
  }
});

s("a Map, a Set or a function in a value (JSON writes {} or nothing) is refused by both backends in one line, as is a cycle", async () => {
  // Stored as JSON, a Map came back {} once evicted from KV's cache while the heap kept it: silent data loss.
  const names = freshJob("parlost");
  const heap = await openBackend("heap", nc, names);
  const kv = await openBackend("jetstream-kv", nc, names, KV_CONFIG);
  const blob = valueState("blob", t.unknown);
  const bag = listState("bag", t.unknown);
  const cyclic: Record<string, unknown> = {};
  cyclic.self = cyclic;
  try {
    for (const backend of [heap, kv]) {
      const handler = new DirectStateRequestHandler(backend);
      const refused = async (write: () => Promise<void>) => write().then(() => "stored", (e: Error) => e.message);
      assert.equal(await refused(() => createStateHandle(blob, scopeOf("a"), handler).update(new Map([["x", 1]]))),
        'state "blob" for key "a": the value cannot be stored as JSON: the value is a Map (JSON writes {}); use plain objects and arrays');
      assert.match(await refused(() => createStateHandle(blob, scopeOf("a"), handler).update({ seen: new Set([1]) })), /: \.seen is a Set \(JSON writes \{\}\)/);
      assert.match(await refused(() => createStateHandle(bag, scopeOf("a"), handler).add({ f: () => 1 })), /: \[0\]\.f is a function/);
      const cycle = await refused(() => createStateHandle(blob, scopeOf("a"), handler).update(cyclic));
      assert.match(cycle, /cannot be stored as JSON: Converting circular structure to JSON$/);
      assert.equal(await createStateHandle(blob, scopeOf("a"), handler).value(), undefined, "nothing stored");
      assert.equal(await refused(() => createStateHandle(blob, scopeOf("a"), handler).update({ empty: {}, list: [] })), "stored");
    }
  } finally {
    await heap.close();
    await kv.close();
  }
});

s("checkpoints (durability checkpoint): a crash at any point restores exactly the last checkpoint's state", async () => {
  // "flush" ops become checkpoints: snapshot, then complete / abort / leave pending at random.
  const ending = fc.constantFrom("complete", "abort", "pending" as const);
  await fc.assert(fc.asyncProperty(fc.array(fc.tuple(opArb, ending), { minLength: 1, maxLength: 60 }), async (steps) => {
    const names = freshJob("park");
    const heap = await openBackend("heap", nc, names);
    const kv = await createKeyedStateBackend({
      kind: "jetstream-kv", nc, names, keyGroupRange: FULL_RANGE, maxParallelism: 128, vertexUid: "v",
      config: { durability: "checkpoint", cacheMaxEntries: 4, dirtyMaxEntries: 3, materializeIntervalMs: 0 },
    });
    const hh = new DirectStateRequestHandler(heap);
    const kh = new DirectStateRequestHandler(kv);
    let id = 0;
    let committed: { snapshots: StateSnapshot[]; state: unknown[] } = { snapshots: [], state: await dump(hh) };
    let unmaterialized: StateSnapshot[] = [];
    const pending = new Map<number, { snapshot: StateSnapshot; state: unknown[] }>();
    for (const [op, end] of steps) {
      if (op.op !== "flush") {
        assert.equal(await run(op, kh, kv), await run(op, hh, heap), JSON.stringify(op));
        continue;
      }
      const snapshot = await kv.snapshot!(++id);
      unmaterialized.push(snapshot);
      pending.set(id, { snapshot, state: await dump(hh) });
      if (end === "abort") { kv.notifyCheckpointAborted!(id); pending.delete(id); continue; }
      if (end === "pending") continue;
      // Committed: the job's metadata lists every delta not yet materialized; materialize, then drop them.
      committed = { snapshots: [...unmaterialized], state: pending.get(id)!.state };
      for (const k of [...pending.keys()]) if (k <= id) pending.delete(k);
      await kv.notifyCheckpointComplete!(id);
      unmaterialized = unmaterialized.filter((x) => x.checkpointId > id);
    }
    // crash (kv abandoned, never closed), then recover from the last committed checkpoint
    const restored = await createKeyedStateBackend({
      kind: "jetstream-kv", nc, names, keyGroupRange: FULL_RANGE, maxParallelism: 128, vertexUid: "v", config: { durability: "checkpoint", materializeIntervalMs: 0 },
    });
    await restored.restore!(committed.snapshots);
    assert.equal(await dump(new DirectStateRequestHandler(restored)), committed.state);
    await restored.close();
    await kv.close();
    await heap.close();
  }), { numRuns: Number(process.env.WEIR_PARITY_RUNS ?? 25) });
});

s.run();
