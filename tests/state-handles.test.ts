// Every state type and method, on both backends, through the handles the runtime gives user functions.
import { suite } from "uvu";
import * as assert from "uvu/assert";
import * as t from "io-ts";
import type { NatsConnection } from "@nats-io/transport-node";
import { withServer } from "./helpers/nats-server.ts";
import { aggregatingState, listState, mapState, reducingState, valueState } from "../state/descriptors.ts";
import { createStateHandle } from "../state/handles/create.ts";
import { DirectStateRequestHandler } from "../state/handlers/direct.ts";
import { StateCodecError } from "../state/errors.ts";
import { NOT_APPLIED, type KeyedStateBackend, type StateDescriptor, type HandleOf, type StateRequestHandler } from "../state/contracts.ts";
import { collect, connectTo, freshJob, openBackend, rejection, scopeOf } from "./state-support.ts";

const s = suite("state handles");
const server = withServer(s);
let nc: NatsConnection;
s.before(async () => { nc = await connectTo(server.url); });
s.after(async () => { await nc?.close(); });

// "jetstream-kv-cold": a cache of 1 entry (and 1 byte: nothing clean stays), and a flush after every request, so reads go to KV: the same
// semantics must hold when nothing is cached.
const kinds = ["heap", "jetstream-kv", "jetstream-kv-cold"] as const;

async function withBackend(kind: (typeof kinds)[number], fn: (state: <D extends StateDescriptor>(d: D, key: unknown, operator?: string) => HandleOf<D>, backend: KeyedStateBackend) => Promise<void>): Promise<void> {
  const backend = kind === "jetstream-kv-cold"
    ? await openBackend("jetstream-kv", nc, freshJob(), { cacheMaxEntries: 1, cacheMaxBytes: 1, flushIntervalMs: 0 })
    : await openBackend(kind, nc, freshJob());
  const direct = new DirectStateRequestHandler(backend);
  const handler: StateRequestHandler = kind !== "jetstream-kv-cold" ? direct : {
    tryNow: () => NOT_APPLIED,
    async submit(request) {
      const result = await direct.submit(request);
      await backend.flush();
      return result;
    },
  };
  try {
    await fn((d, key, operator) => createStateHandle(d, scopeOf(key, operator), handler), backend);
    if (kind === "jetstream-kv-cold") {
      const m = backend.metrics();
      assert.ok(m.remoteReads > 0 && m.remoteWrites > 0 && m.evictions > 0, `cold backend went to KV: ${JSON.stringify(m)}`);
    }
  } finally {
    await backend.close();
  }
}

const count = valueState("count", t.number);
const nullable = valueState("nullable", t.union([t.number, t.null]));
const Point = t.type({ x: t.number, y: t.number });
const point = valueState("point", Point);
const events = listState("events", t.string);
const visits = mapState("visits", t.string, t.number);
const byPoint = mapState("byPoint", Point, t.string);
const byTagged = mapState("byTagged", t.intersection([t.type({ id: t.number }), t.partial({ tag: t.string })]), t.string);
const total = reducingState("total", t.number, (a, b) => a + b);
const average = aggregatingState("average", t.type({ sum: t.number, n: t.number }), {
  createAccumulator: () => ({ sum: 0, n: 0 }),
  add: (v: number, acc) => ({ sum: acc.sum + v, n: acc.n + 1 }),
  getResult: (acc) => acc.sum / acc.n,
});

for (const kind of kinds) {
  s(`${kind}: ValueState value/update/clear, absent is undefined, update(undefined) deletes`, () => withBackend(kind, async (state) => {
    const c = state(count, "user-1");
    assert.is(await c.value(), undefined);
    await c.update(1);
    await c.update(((await c.value()) ?? 0) + 41);
    assert.is(await c.value(), 42);
    await c.update(undefined);
    assert.is(await c.value(), undefined);
    await c.update(7);
    await c.clear();
    assert.is(await c.value(), undefined);
    const p = state(point, "user-1");
    await p.update({ x: 1, y: 2 });
    assert.equal(await p.value(), { x: 1, y: 2 });
  }));

  // The heap backend keeps a key's value in a cell memoized on the handle's address: handles made apart
  // (a key's slot built again) must still see one value, through removals and writes again.
  s(`${kind}: two handles of one key's ValueState see each other's writes and clears, lists too`, () => withBackend(kind, async (state) => {
    const a = state(count, "k2");
    const b = state(count, "k2");
    assert.is(await b.value(), undefined);
    await a.update(1);
    assert.is(await b.value(), 1);
    await b.clear();
    assert.is(await a.value(), undefined);
    await a.update(2);
    assert.is(await b.value(), 2);
    await b.update(3);
    assert.is(await a.value(), 3);
    await a.clear();
    await b.update(4);
    assert.is(await a.value(), 4);
    assert.is(await state(count, "k2").value(), 4, "a third handle made afterwards");
    const la = state(events, "k2");
    const lb = state(events, "k2");
    await la.add("x");
    await lb.add("y");
    assert.equal(await la.get(), ["x", "y"]);
    await la.clear();
    await lb.add("z");
    assert.equal(await la.get(), ["z"]);
  }));

  s(`${kind}: ValueState keeps null apart from absent`, () => withBackend(kind, async (state) => {
    const n = state(nullable, "k");
    assert.is(await n.value(), undefined);
    await n.update(null);
    assert.is(await n.value(), null);
    await n.update(undefined);
    assert.is(await n.value(), undefined);
  }));

  s(`${kind}: state is per key, per operator and per state name`, () => withBackend(kind, async (state) => {
    await state(count, "a").update(1);
    await state(count, "b").update(2);
    await state(count, "a", "op2").update(3);
    await state(valueState("count2", t.number), "a").update(4);
    assert.is(await state(count, "a").value(), 1);
    assert.is(await state(count, "b").value(), 2);
    assert.is(await state(count, "a", "op2").value(), 3);
    assert.is(await state(count, "c").value(), undefined);
    // keys that are equal as JSON are the same key; 1 and "1" are not
    await state(count, 1).update(10);
    assert.is(await state(count, "1").value(), undefined);
    await state(count, { b: 1, a: 2 }).update(11);
    assert.is(await state(count, { a: 2, b: 1 }).value(), 11);
  }));

  s(`${kind}: ListState get/add/addAll/update/clear`, () => withBackend(kind, async (state) => {
    const l = state(events, "k");
    assert.equal(await l.get(), []);
    await l.addAll([]);
    assert.equal(await l.get(), [], "addAll([]) on an absent list stores nothing");
    await l.add("a");
    await l.addAll(["b", "c"]);
    await l.add("d");
    assert.equal(await l.get(), ["a", "b", "c", "d"]);
    const got = (await l.get())!;
    got.push("mutated");
    assert.equal(await l.get(), ["a", "b", "c", "d"], "a returned list is a copy");
    await l.update(["x", "y"]);
    assert.equal(await l.get(), ["x", "y"]);
    await l.update([]);
    assert.equal(await l.get(), [], "update([]) clears");
    await l.add("z");
    await l.clear();
    assert.equal(await l.get(), []);
    const err = await rejection(l.add(undefined as unknown as string));
    assert.instance(err, StateCodecError);
    // Iterables other than arrays (no `length`) stored [undefined], which every later read refused.
    await l.addAll(new Set(["s1", "s2"]));
    await l.addAll((function* () { yield "g"; })());
    assert.equal(await l.get(), ["s1", "s2", "g"]);
    await l.update(new Set(["u"]));
    assert.equal(await l.get(), ["u"]);
    assert.match((await rejection(l.update(undefined as unknown as string[]))).message, /update takes an array .* not undefined/);
    assert.equal(await l.get(), ["u"]);
  }));

  s(`${kind}: MapState get/put/putAll/remove/contains/iteration/isEmpty/clear`, () => withBackend(kind, async (state) => {
    const m = state(visits, "user-1");
    assert.is(await m.isEmpty(), true);
    assert.is(await m.get("home"), undefined);
    assert.is(await m.contains("home"), false);
    await m.put("home", 1);
    await m.put("cart", 2);
    await m.putAll([["about", 3], ["home", 4]]);
    await m.putAll({ zebra: 5 });
    assert.is(await m.get("home"), 4);
    assert.is(await m.contains("cart"), true);
    assert.is(await m.isEmpty(), false);
    assert.equal(await collect(m.entries()), [["about", 3], ["cart", 2], ["home", 4], ["zebra", 5]]);
    assert.equal(await collect(m.keys()), ["about", "cart", "home", "zebra"]);
    assert.equal(await collect(m.values()), [3, 2, 4, 5]);
    // Awaited instead of iterated: every item at once (API.md: every state method returns a Promise).
    assert.equal(await m.entries(), [["about", 3], ["cart", 2], ["home", 4], ["zebra", 5]]);
    assert.equal(await m.keys(), ["about", "cart", "home", "zebra"]);
    assert.is(await m.values().then((vs) => vs.reduce((a, b) => a + b, 0)), 14);
    await m.remove("cart");
    await m.remove("never-there");
    assert.is(await m.contains("cart"), false);
    assert.equal(await collect(m.keys()), ["about", "home", "zebra"]);
    await m.put("about", undefined as unknown as number);
    assert.equal(await collect(m.keys()), ["home", "zebra"], "put(k, undefined) removes");
    assert.is(await state(visits, "user-2").isEmpty(), true, "another key's map is separate");
    await m.clear();
    assert.is(await m.isEmpty(), true);
    assert.is(await m.get("home"), undefined);
    assert.equal(await collect(m.entries()), []);
    await m.put("again", 1);
    assert.equal(await collect(m.entries()), [["again", 1]]);
  }));

  s(`${kind}: MapState with object keys`, () => withBackend(kind, async (state) => {
    const m = state(byPoint, "k");
    await m.put({ y: 2, x: 1 }, "a");
    assert.is(await m.get({ x: 1, y: 2 }), "a");
    assert.equal(await collect(m.entries()), [[{ x: 1, y: 2 }, "a"]]);
    // An optional field left undefined is absent, as in JSON: it read back as null, which its codec refused.
    const tagged = state(byTagged, "k");
    await tagged.put({ id: 1, tag: undefined } as unknown as { id: number; tag?: string }, "b");
    assert.is(await tagged.get({ id: 1 }), "b");
    assert.equal(await collect(tagged.keys()), [{ id: 1 }]);
    await state(count, { id: 7, tag: undefined }).update(3);
    assert.is(await state(count, { id: 7 }).value(), 3, "a key selector's { id, tag: undefined } is the key { id }");
  }));

  s(`${kind}: ReducingState and AggregatingState`, () => withBackend(kind, async (state) => {
    const r = state(total, "k");
    assert.is(await r.get(), undefined);
    await r.add(3);
    await r.add(4);
    assert.is(await r.get(), 7);
    await r.clear();
    assert.is(await r.get(), undefined);
    const a = state(average, "k");
    assert.is(await a.get(), undefined);
    await a.add(2);
    await a.add(4);
    assert.is(await a.get(), 3);
    await a.clear();
    assert.is(await a.get(), undefined);
  }));

  s(`${kind}: codec errors on write and read name the state, the key and the path`, () => withBackend(kind, async (state) => {
    const e1 = await rejection(state(count, "user-1").update("seven" as unknown as number));
    assert.instance(e1, StateCodecError);
    assert.match(e1.message, /state "count"/);
    assert.match(e1.message, /"user-1"/);
    assert.match(e1.message, /"seven"/);
    assert.match(e1.message, /number/);
    assert.not.match(e1.message, /\n/);
    assert.is(await state(count, "user-1").value(), undefined, "a refused write stores nothing");

    const e2 = await rejection(state(point, "p").update({ x: 1, y: "2" } as unknown as { x: number; y: number }));
    assert.match(e2.message, /\/y: number/, "the path inside the value");

    // Stored by an older version of the job with another shape: reading it fails clearly.
    await state(valueState("count", t.unknown), "user-2").update({ legacy: true });
    const e3 = await rejection(state(count, "user-2").value());
    assert.instance(e3, StateCodecError);
    assert.match(e3.message, /cannot read/);
    assert.match(e3.message, /"user-2"/);

    const e4 = await rejection(state(visits, "u").put(5 as unknown as string, 1));
    assert.match(e4.message, /map key/);
    const e5 = await rejection(state(events, "u").addAll(["ok", 5 as unknown as string]));
    assert.match(e5.message, /element 1/);
    assert.equal(await state(events, "u").get(), [], "a refused addAll stores nothing");
  }));

  s(`${kind}: names and keys with any characters`, () => withBackend(kind, async (state) => {
    const odd = valueState("per user/ü.x*> =22 state", t.string);
    const keys = ["a.b", "*", ">", "sp ace", "ü€😀", "", "=22", { "a b": [1, "x.y"] }, [null, true], -1.5];
    for (const [i, k] of keys.entries()) await state(odd, k).update(`v${i}`);
    for (const [i, k] of keys.entries()) assert.is(await state(odd, k).value(), `v${i}`, JSON.stringify(k));
    const m = state(mapState("m.a.p", t.string, t.number), "x y");
    await m.put("a.b c", 1);
    await m.put("*", 2);
    assert.equal(await collect(m.entries()), [["*", 2], ["a.b c", 1]]);
    // A key too long for KV is named shortened, never cut inside an emoji's surrogate pair.
    const message = (await rejection(state(odd, "😀".repeat(170)).update("v"))).message;
    assert.match(message, /the encoded key is \d+ characters/);
    assert.not.match(message, /[\ud800-\udbff](?![\udc00-\udfff])/, "no lone high surrogate");
  }));
}

s("descriptors refuse an empty name and a missing codec", () => {
  assert.throws(() => valueState("", t.number), /non-empty/);
  assert.throws(() => listState("x", undefined as unknown as t.Type<number>), /io-ts codec/);
  assert.throws(() => reducingState("x", t.number, undefined as unknown as (a: number, b: number) => number), /reduce/);
});

s.run();
