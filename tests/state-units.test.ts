// Pieces of the state layer that need no server: key encoding, ordered key pages, config validation,
// changelog format, the KV cache's bookkeeping of erased entries.
import { suite } from "uvu";
import * as assert from "uvu/assert";
import fc from "fast-check";
import { decodeToken, encodeToken, parseKey, baseKey, checkBaseKey, MAX_KEY_LENGTH } from "../state/backends/jetstream-kv/keys.ts";
import { OrderedKeys } from "../state/backends/ordered-keys.ts";
import { resolveStateBackendConfig, DEFAULT_STATE_BACKEND_CONFIG } from "../state/config.ts";
import { decodeDelta, encodeDelta } from "../state/backends/changelog/format.ts";
import { StateLimitError } from "../state/errors.ts";
import { FreshBucketKeys } from "../state/backends/jetstream-kv/fresh-keys.ts";
import { CacheEntry, EntryKind, StateCache } from "../state/backends/jetstream-kv/cache.ts";
import { runPool } from "../state/backends/jetstream-kv/entry-writes.ts";
import { pubAckSeq } from "../state/backends/jetstream-kv/pipe-replies.ts";
import { HeapKeyedStateBackend } from "../state/backends/heap.ts";
import { baseAddress, entryAddress } from "../state/handles/address.ts";
import { KeyGroupRange } from "../state/key-groups.ts";
import { stateRequest } from "../state/requests.ts";
import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";

const s = suite("state units");

s("KV key tokens: reversible for any string, and only characters KV keys allow, never . * > /", () => {
  fc.assert(fc.property(fc.string({ minLength: 1, unit: "binary" }), (str) => {
    const token = encodeToken(str);
    assert.ok(/^[-=\w]+$/.test(token), token);
    assert.is(decodeToken(token), str);
  }), { numRuns: 2000 });
  assert.is(encodeToken("user-1"), "user-1");
  assert.is(encodeToken('"user-1"'), "=22user-1=22");
  assert.is(encodeToken("a.b c"), "a=2Eb=20c");
  assert.is(encodeToken("ü"), "=C3=BC");
  assert.throws(() => encodeToken(""), /empty/);
});

s("KV keys: parse back to the address; too long keys are refused with the state named", () => {
  const a = { operator: "op-1", state: "my state", keyGroup: 17, keyId: '{"id":[1,"x.y"]}' };
  assert.equal(parseKey(baseKey(a)), a);
  const e = (() => { try { baseKey({ ...a, keyId: JSON.stringify("x".repeat(MAX_KEY_LENGTH)) }); } catch (err) { return err; } })();
  assert.instance(e, StateLimitError);
  assert.match((e as Error).message, /state "my state"/);
});

s("KV keys: the heap's quick check of a new key refuses exactly what building it refuses, with the same line", () => {
  const refusal = (f: () => unknown): string | undefined => { try { f(); return undefined; } catch (e) { return (e as Error).message; } };
  // Keys about the limit: ASCII (3 characters each when escaped), two- and three-byte characters, surrogate pairs.
  const token = (max: number) => fc.oneof(
    fc.string({ maxLength: max }),
    fc.string({ unit: "grapheme", maxLength: max / 4 }),
    fc.nat({ max }).map((n) => "é".repeat(n / 3)),
    fc.nat({ max }).map((n) => "€.".repeat(n / 4)),
  );
  fc.assert(fc.property(fc.record({ operator: token(40), state: token(40), keyGroup: fc.nat({ max: 32767 }), keyId: token(2200) }), (a) =>
    refusal(() => baseKey(a)) === refusal(() => checkBaseKey(a))), { numRuns: 2000 });
  for (const keyId of ["k".repeat(2030), "k".repeat(2040), "=".repeat(700), "é".repeat(340), "é".repeat(342)]) {
    const a = { operator: "op", state: "v", keyGroup: 99, keyId };
    assert.is(refusal(() => checkBaseKey(a)), refusal(() => baseKey(a)), `${keyId.length} × ${keyId[0]}`);
  }
  assert.match(refusal(() => checkBaseKey({ operator: "op", state: "v", keyGroup: 1, keyId: "k".repeat(2045) }))!, /more than the 2048/);
});

s("OrderedKeys: pages in order with a cursor, across removals and additions", () => {
  const k = new OrderedKeys();
  for (const x of ["d", "b", "a", "c", "e"]) k.add(x);
  assert.equal(k.page(undefined, 2), { keys: ["a", "b"], more: true });
  k.delete("c");
  assert.equal(k.page("b", 2), { keys: ["d", "e"], more: false });
  k.add("bb");
  assert.equal(k.page("b", 10), { keys: ["bb", "d", "e"], more: false });
  assert.equal(k.page("e", 10), { keys: [], more: false });
  k.clear();
  assert.equal(k.page(undefined, 10), { keys: [], more: false });
});

s("fresh-bucket keys: an evicted key is never reported absent; others mostly are; after a restore, none", () => {
  const keys = new FreshBucketKeys();
  assert.ok(keys.empty, "nothing evicted yet: KV holds nothing");
  const evicted = Array.from({ length: 20_000 }, (_, i) => `op.count.${i % 128}.=22k${i}=22`);
  for (const k of evicted) keys.onEvict(k);
  assert.not.ok(keys.empty, "after an eviction KV may hold something");
  assert.ok(evicted.every((k) => !keys.isAbsent(k)), "no false negatives: an evicted key may be in KV");
  fc.assert(fc.property(fc.string(), (k) => { keys.onEvict(k); return !keys.isAbsent(k); }), { numRuns: 500 });
  const others = Array.from({ length: 20_000 }, (_, i) => `op.count.${i % 128}.=22other${i}=22`);
  const absent = others.filter((k) => keys.isAbsent(k)).length;
  assert.ok(absent > 19_900, `${absent} of 20000 never-evicted keys known absent`);
  keys.forget();
  assert.not.ok(keys.isAbsent("op.count.1.=22new=22"), "after a restore wrote KV, every miss reads it");
  const restored = new FreshBucketKeys();
  restored.forget();
  assert.not.ok(restored.empty, "a restore wrote KV: not empty");
});

/** Five rounds of 5,000 entries put in `cache` and dropped again; weak references to all of them. */
function insertAndDrop(cache: StateCache): Array<WeakRef<CacheEntry>> {
  const gone: Array<WeakRef<CacheEntry>> = [];
  for (let round = 0; round < 5; round++) {
    const batch: CacheEntry[] = [];
    for (let i = 0; i < 5000; i++) { const e = new CacheEntry(`r${round}k${i}`, EntryKind.Value, 0, undefined, 0); cache.insert(e); batch.push(e); }
    cache.evict();
    for (const e of batch) { assert.ok(cache.dropErased(e)); gone.push(new WeakRef(e)); }
    cache.evict();
  }
  return gone;
}

s("KV cache: entries that left the cache are garbage, whether or not it was ever over its bounds", async () => {
  setFlagsFromString("--expose-gc");
  const gc = runInNewContext("gc") as () => void;
  const cache = new StateCache(1_000_000, 1 << 30);
  cache.evict(); // within bounds: as after every batch of a job whose cache never fills
  // In a function of its own: the async test's suspended frame could otherwise keep the last batch alive.
  const gone = insertAndDrop(cache);
  assert.is(cache.size, 0);
  for (let i = 0; i < 3; i++) { gc(); await new Promise((r) => setTimeout(r, 10)); }
  const alive = gone.filter((w) => w.deref() !== undefined).length;
  assert.is(alive, 0, `${alive} of ${gone.length} dropped entries still reachable`);
});

/** 20,000 entries written, flushed (marked clean) and evicted from `cache`; weak references to them. */
function dirtyCleanEvict(cache: StateCache): Array<WeakRef<CacheEntry>> {
  const gone: Array<WeakRef<CacheEntry>> = [];
  for (let i = 0; i < 20_000; i++) {
    const e = new CacheEntry(`d${i}`, EntryKind.Value, 0, i, 0);
    cache.insert(e);
    cache.markDirty(e);
    cache.markClean(e, e.version);
    gone.push(new WeakRef(e));
  }
  return gone;
}

s("KV cache: the dirty entries are counted and listed once each, however often written and flushed; flushed and evicted ones are garbage", async () => {
  const cache = new StateCache(10, 1 << 30);
  const entry = (key: string) => { const e = new CacheEntry(key, EntryKind.Value, 0, 1, 0); cache.insert(e); return e; };
  const [a, b, c] = [entry("a"), entry("b"), entry("c")];
  for (const e of [a, b, a, c, a]) cache.markDirty(e);
  assert.is(cache.dirty.size, 3);
  cache.markClean(a, a.version - 1);
  assert.is(cache.dirty.size, 3, "written again after the version flushed: still dirty");
  cache.markClean(a, a.version);
  cache.markClean(a, a.version);
  assert.is(cache.dirty.size, 2, "clean once, counted once");
  cache.markDirty(a);
  assert.equal(cache.dirty.entries().map((e) => e.key).sort(), ["a", "b", "c"], "dirty again: listed once");
  for (const e of [a, b, c]) cache.markClean(e, e.version);
  assert.equal(cache.dirty.entries(), []);
  assert.is(cache.dirty.size, 0);

  setFlagsFromString("--expose-gc");
  const gc = runInNewContext("gc") as () => void;
  const gone = dirtyCleanEvict(cache);
  cache.evict();
  assert.is(cache.dirty.size, 0);
  for (let i = 0; i < 3; i++) { gc(); await new Promise((r) => setTimeout(r, 10)); }
  const alive = gone.filter((w) => w.deref() !== undefined).length;
  // The cache keeps 10 entries; the list of dirty ones may hold up to its slack (1,024) of clean ones.
  assert.ok(alive <= 10 + 1024, `${alive} of ${gone.length} flushed and evicted entries still reachable`);
});

s("KV cache: an over-budget wave takes the oldest dirty entries, until both the entries and the bytes left are within what it leaves", () => {
  const cache = new StateCache(100, 1 << 30);
  const entries = ["a", "b", "c", "d", "e"].map((key, i) => {
    const e = new CacheEntry(key, EntryKind.Value, 0, i, 0);
    cache.insert(e);
    cache.markDirty(e);
    return e;
  });
  const [a, b] = entries;
  cache.markClean(b!, b!.version);
  cache.markDirty(a!);
  cache.markDirty(b!); // dirty again before the list was compacted: it keeps its place
  const keys = (leaveEntries: number, leaveBytes: number) => cache.dirty.oldest(leaveEntries, leaveBytes, cache.dirtyBytes).map((e) => e.key);
  assert.equal(keys(3, Number.MAX_SAFE_INTEGER), ["a", "b"], "the first two, in the order they were listed");
  assert.equal(keys(5, Number.MAX_SAFE_INTEGER), [], "nothing over");
  const perEntry = a!.bytes;
  assert.equal(keys(5, 2 * perEntry), ["a", "b", "c"], "by bytes: three of five entries of equal size");
  assert.equal(keys(0, 0).length, 5);
});

s("KV cache: an erased entry leaves only when absent, clean, unpinned and still the key's entry; eviction does not see it", () => {
  const evicted: string[] = [];
  const cache = new StateCache(100, 1 << 20, (k) => evicted.push(k));
  const entry = (key: string, value: unknown = undefined) => { const e = new CacheEntry(key, EntryKind.Value, 0, value, 0); cache.insert(e); return e; };
  const pinned = entry("pinned");
  pinned.pins = 1;
  assert.not.ok(cache.dropErased(pinned), "a running batch relies on it");
  const dirty = entry("dirty");
  cache.markDirty(dirty);
  assert.not.ok(cache.dropErased(dirty), "written again since its removal was captured");
  assert.not.ok(cache.dropErased(entry("valued", 7)), "holds a value");
  const replaced = new CacheEntry("valued", EntryKind.Value, 0, undefined, 0);
  assert.not.ok(cache.dropErased(replaced), "not the cache's entry for its key");
  const index = new CacheEntry("index", EntryKind.Index, 0, new OrderedKeys(), 0);
  cache.insert(index);
  const absent = entry("absent");
  const bytes = cache.bytes;
  assert.ok(cache.dropErased(absent) && cache.dropErased(index), "an absent value and an empty map index leave");
  assert.is(cache.size, 3);
  assert.is(cache.bytes, bytes - absent.bytes - index.bytes);
  assert.is(cache.peek("absent", 0), undefined);
  assert.equal(evicted, [], "not an eviction: KV holds nothing under the key, misses may read it as absent");
  pinned.pins = 0;
  assert.ok(cache.dropErased(pinned), "once unpinned");
});

s("KV cache: entries live in their key group's Map, are bounded together, and the CLOCK hand goes round every group", () => {
  const evicted: string[] = [];
  const cache = new StateCache(6, 1 << 30, (k) => evicted.push(k), 64); // a backend whose key groups start at 64
  const entry = (key: string, keyGroup: number) => { const e = new CacheEntry(key, EntryKind.Value, keyGroup, 1, 0); cache.insert(e); return e; };
  for (const [key, group] of [["a", 64], ["b", 64], ["c", 64], ["d", 65], ["e", 65], ["f", 70], ["g", 70], ["h", 70]] as const) entry(key, group);
  assert.is(cache.size, 8);
  assert.is(cache.peek("d", 65)?.key, "d");
  assert.is(cache.peek("d", 64), undefined, "looked up in its own key group");
  assert.is(cache.touch("h", 71), undefined);
  assert.ok(cache.evict(), "within bounds again");
  assert.is(cache.size, 6);
  assert.equal(evicted, ["a", "b"], "a first lap clears every reference bit; the second evicts in the hand's order");
  entry("i", 66);
  entry("j", 66);
  cache.touch("d", 65);
  assert.ok(cache.evict());
  assert.equal(evicted, ["a", "b", "c", "e"], "d was used since the hand passed: a second chance; i and j are new");
  assert.equal(["c", "d", "e", "i", "j"].map((k) => cache.peek(k, k === "d" || k === "e" ? 65 : k === "c" ? 64 : 66) !== undefined), [false, true, false, true, true]);
  const d = cache.peek("d", 65)!;
  d.value = undefined;
  assert.ok(cache.dropErased(d), "an erased entry leaves its own key group's Map");
  assert.is(cache.size, 5);
  assert.throws(() => entry("x", 63), /key group 63 is not one of this backend's/);
  cache.clear();
  assert.is(cache.size, 0);
  assert.is(cache.peek("f", 70), undefined);
});

s("heap backend: cleared state leaves nothing behind (no tombstones)", () => {
  const heap = new HeapKeyedStateBackend(new KeyGroupRange(0, 9));
  const at = (keyId: string) => baseAddress("acc", { operator: "op", keyGroup: 3, keyId, key: keyId });
  for (let i = 0; i < 100; i++) heap.tryNow(stateRequest.put(at(`k${i}`), i));
  assert.is(heap.metrics().cacheEntries, 100);
  for (let i = 0; i < 100; i++) heap.tryNow(stateRequest.put(at(`k${i}`), undefined));
  assert.is(heap.metrics().cacheEntries, 0);
});

s("heap backend: a state emptied (a fired window's) leaves its key group; an address that knew it still writes where reads see it", () => {
  const heap = new HeapKeyedStateBackend(new KeyGroupRange(0, 9));
  const namespaces = () => [...(heap as unknown as { groups: Array<Map<string, Map<string, unknown>>> }).groups[3]!.values()].reduce((n, m) => n + m.size, 0);
  const scope = { operator: "op", keyGroup: 3, keyId: "k", key: "k" };
  for (let w = 0; w < 1000; w++) {
    const acc = baseAddress(`acc@${w}`, scope);
    const elements = entryAddress(baseAddress(`elements@${w}`, scope), "e");
    heap.tryNow(stateRequest.put(acc, w));
    heap.tryNow(stateRequest.put(elements, w));
    assert.ok(heap.knownEmpty(baseAddress(`never@${w}`, scope)), "a state never written");
    heap.tryNow(stateRequest.put(acc, undefined));
    heap.tryNow(stateRequest.clearMap(baseAddress(`elements@${w}`, scope)));
  }
  assert.is(namespaces(), 0, "emptied states are gone");
  const value = baseAddress("count", scope);
  const entry = entryAddress(baseAddress("seen", scope), "u");
  for (const round of [1, 2]) {
    heap.tryNow(stateRequest.put(value, round));
    heap.tryNow(stateRequest.put(entry, round));
    assert.is(heap.tryNow(stateRequest.get(baseAddress("count", scope))), round, "a value written through a reused address");
    assert.is(heap.tryNow(stateRequest.get(entryAddress(baseAddress("seen", scope), "u"))), round, "a map entry written through a reused address");
    assert.is(heap.metrics().cacheEntries, 2);
    heap.tryNow(stateRequest.put(value, undefined));
    heap.tryNow(stateRequest.put(entry, undefined));
    assert.is(namespaces(), 0);
  }
});

s("heap backend: several addresses of a key (a handle made again, a drain's) read what any of them last wrote, in any order, across removals, reused indexes and two backends", () => {
  // The heap keeps a copy of a key's value in the address that last used it (heap-namespace.ts): a model
  // of puts, removals, appends and reads through three addresses per key over three keys, each address
  // used with either of two backends, against a Map per backend.
  const op = fc.record({
    kind: fc.constantFrom("get", "put", "remove", "append", "fresh"),
    backend: fc.integer({ min: 0, max: 1 }),
    key: fc.integer({ min: 0, max: 2 }),
    address: fc.integer({ min: 0, max: 2 }),
    value: fc.integer({ min: 0, max: 99 }),
  });
  fc.assert(fc.property(fc.array(op, { maxLength: 60 }), (ops) => {
    const heaps = [0, 1].map(() => new HeapKeyedStateBackend(new KeyGroupRange(0, 9)));
    const make = (key: number) => baseAddress("s", { operator: "op", keyGroup: 3, keyId: `k${key}`, key: `k${key}` });
    const addresses = [0, 1, 2].map((key) => [0, 1, 2].map(() => make(key)));
    const models = heaps.map(() => new Map<number, unknown>());
    for (const o of ops) {
      const at = addresses[o.key]![o.address]!;
      const heap = heaps[o.backend]!;
      const model = models[o.backend]!;
      if (o.kind === "fresh") addresses[o.key]![o.address] = make(o.key); // the slot rebuilt: a new address
      else if (o.kind === "put") { heap.tryNow(stateRequest.put(at, o.value)); model.set(o.key, o.value); }
      else if (o.kind === "remove") { heap.tryNow(stateRequest.put(at, undefined)); model.delete(o.key); }
      else if (o.kind === "append") {
        heap.tryNow(stateRequest.append(at, [o.value]));
        const before = model.get(o.key);
        model.set(o.key, Array.isArray(before) ? [...before, o.value] : [o.value]);
      } else assert.equal(heap.tryNow(stateRequest.get(at)), model.get(o.key), `key ${o.key} through address ${o.address} on backend ${o.backend}`);
    }
    heaps.forEach((heap, b) => {
      for (const key of [0, 1, 2]) {
        for (const at of [...addresses[key]!, make(key)]) assert.equal(heap.tryNow(stateRequest.get(at)), models[b]!.get(key), `key ${key} at the end`);
        assert.is(heap.knownEmpty(make(key)), !models[b]!.has(key));
      }
      assert.is(heap.metrics().cacheEntries, models[b]!.size);
    });
  }), { numRuns: 3000 });
});

s("heap backend: knownEmpty tells a value address with nothing in it (what the backlog sort folds on)", () => {
  const heap = new HeapKeyedStateBackend(new KeyGroupRange(0, 9));
  const at = (keyId: string, keyGroup = 3) => baseAddress("sum", { operator: "op", keyGroup, keyId, key: keyId });
  assert.ok(heap.knownEmpty(at("a")));
  heap.tryNow(stateRequest.put(at("a"), 5));
  assert.not.ok(heap.knownEmpty(at("a")), "written");
  assert.ok(heap.knownEmpty(at("b")), "another key");
  heap.tryNow(stateRequest.put(at("a"), undefined));
  assert.ok(heap.knownEmpty(at("a")), "deleted");
  assert.not.ok(heap.knownEmpty(at("a", 42)), "a key group it does not own: it cannot tell");
});

s("heap backend: an address reused across requests and backends reads each backend's own state, and a closed backend refuses it", async () => {
  const a = new HeapKeyedStateBackend(new KeyGroupRange(0, 9));
  const b = new HeapKeyedStateBackend(new KeyGroupRange(0, 9));
  const at = baseAddress("count", { operator: "op", keyGroup: 3, keyId: "k", key: "k" });
  a.tryNow(stateRequest.put(at, 1));
  b.tryNow(stateRequest.put(at, 2));
  a.tryNow(stateRequest.put(at, 3));
  assert.is(a.tryNow(stateRequest.get(at)), 3);
  assert.is(b.tryNow(stateRequest.get(at)), 2);
  a.tryNow(stateRequest.put(at, undefined));
  assert.is(a.tryNow(stateRequest.get(at)), undefined);
  assert.is(a.metrics().cacheEntries, 0, "a delete through the reused address leaves nothing");
  const outside = baseAddress("count", { operator: "op", keyGroup: 12, keyId: "k", key: "k" });
  assert.throws(() => a.tryNow(stateRequest.get(outside)), /outside/);
  await b.close();
  assert.throws(() => b.tryNow(stateRequest.get(at)), /closed/);
});

s("config: defaults, partial overrides, clear errors", () => {
  assert.equal(resolveStateBackendConfig(undefined), DEFAULT_STATE_BACKEND_CONFIG);
  assert.is(resolveStateBackendConfig({ cacheMaxEntries: 10 }).cacheMaxEntries, 10);
  assert.throws(() => resolveStateBackendConfig({ cacheMaxEntries: -1 }), /cacheMaxEntries/);
  assert.throws(() => resolveStateBackendConfig({ durability: "sometimes" }), /durability/);
});

s("changelog format: entries survive encoding, across part boundaries", () => {
  fc.assert(fc.property(
    fc.array(fc.record({ key: fc.stringMatching(/^[-=\w./]{1,20}$/), json: fc.option(fc.jsonValue().map((v) => JSON.stringify(v)), { nil: undefined }) })),
    fc.integer({ min: 1, max: 64 }),
    (entries, partBytes) => {
      const parts = encodeDelta(entries, partBytes);
      assert.ok(parts.every((p) => p.length <= partBytes));
      const out = new Map<string, string | undefined>();
      decodeDelta(parts, out);
      const expected = new Map<string, string | undefined>();
      for (const e of entries) expected.set(e.key, e.json);
      assert.equal([...out], [...expected]);
    },
  ), { numRuns: 300 });
});

s("runPool (a flush's writes): every item once, never more than the concurrency pending, the first failure rejects and starts no more", async () => {
  const calls: number[] = [];
  let pending = 0;
  let most = 0;
  const slow = (i: number): Promise<void> => {
    calls.push(i);
    most = Math.max(most, ++pending);
    return new Promise((r) => setTimeout(() => { pending--; r(); }, i % 3));
  };
  await runPool(Array.from({ length: 50 }, (_, i) => i), 4, slow);
  assert.equal(calls, Array.from({ length: 50 }, (_, i) => i));
  assert.is(most, 4);
  assert.is(pending, 0);
  await runPool([], 4, slow); // resolves with nothing to do
  const started: number[] = [];
  const failing = (i: number): Promise<void> => {
    started.push(i);
    return i === 2 ? Promise.reject(new Error("write 2 failed")) : new Promise((r) => setTimeout(r, 5));
  };
  const error = await runPool(Array.from({ length: 20 }, (_, i) => i), 3, failing).then(() => undefined, (e: Error) => e);
  assert.is(error?.message, "write 2 failed");
  await new Promise((r) => setTimeout(r, 20));
  assert.equal(started, [0, 1, 2], "no write starts after the failure");
});

s("PubAck fast path: the sequence read off the server's success form; anything else is left to JSON", () => {
  const bytes = (text: string) => new TextEncoder().encode(text);
  // As nats-server 2.9 writes them (a put's reply seen in tests/state-kv-write-wave).
  assert.is(pubAckSeq(bytes('{"stream":"KV_b", "seq":300001}')), 300001);
  assert.is(pubAckSeq(bytes('{"stream":"KV_weir_state_job", "domain":"hub", "seq":7}')), 7);
  for (const other of ['{"stream":"KV_b", "seq":5, "duplicate": true}', '{"error":{"code":503,"description":"no responders"}}', '{"stream":"KV_b", "seq":}', '{"stream":"KV_b", "sequence":12}', "", "{}"]) {
    assert.is(pubAckSeq(bytes(other)), -1, other);
  }
});

s.run();
