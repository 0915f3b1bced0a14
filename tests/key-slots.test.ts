// Key slots (runtime/keyed/key-slots.ts): one per key, reused by the key's records, holding its lock and
// state handles. What a keyed job relies on: keys that differ in state get different slots, a key's group
// is placed once, and per-key order holds while the table drops old slots (property, random latency).
import { suite } from "uvu";
import * as assert from "uvu/assert";
import fc from "fast-check";
import * as t from "io-ts";
import { AsyncExecutionController } from "../runtime/keyed/async/controller.ts";
import type { ControlledRecord } from "../runtime/keyed/async/controlled-record.ts";
import type { Epoch } from "../runtime/keyed/async/epoch-manager.ts";
import { KeySlotTable, type KeySlot } from "../runtime/keyed/key-slots.ts";
import { systemClock } from "../runtime/core/clock.ts";
import { DirectStateRequestHandler } from "../state/handlers/direct.ts";
import { HeapKeyedStateBackend, KeyGroupRange, valueState, assignToKeyGroup, canonicalJson, NOT_APPLIED, type KeyedStateBackend, type PendingStateRequest, type StateRequest } from "../mod.ts";

const slots = suite("key slots");

slots("keys that differ in state get different slots; equal objects share one; the key group is placed once per key", () => {
  const placed: unknown[] = [];
  const table = new KeySlotTable("op", (key) => { placed.push(key); return assignToKeyGroup(key, 128); });
  assert.is.not(table.slotFor(1), table.slotFor("1"), "1 and \"1\" are different keys");
  assert.is(table.slotFor({ a: 1, b: 2 }), table.slotFor({ b: 2, a: 1 }), "objects by canonical JSON");
  assert.is(table.slotFor({ a: 1, b: 2 }).keyId, canonicalJson({ a: 1, b: 2 }));
  assert.is(table.slotFor("k").keyId, canonicalJson("k"));
  assert.is(table.slotFor(Number.NaN), table.slotFor(null), "keys with one canonical JSON share a slot (and its lock)");
  assert.is(table.slotFor(-0), table.slotFor(0));
  assert.is(table.slotFor("k").keyGroup, assignToKeyGroup("k", 128));
  for (let i = 0; i < 100; i++) table.slotFor("k");
  assert.is(placed.filter((k) => k === "k").length, 1, "hashing once per key, not per record");
});

slots("slotOnce (a sorted drain's): the table's slot for a key it holds, else a slot it does not keep", () => {
  const table = new KeySlotTable("op", (key) => assignToKeyGroup(key, 128), 4);
  const held = table.slotFor("held");
  const obj = table.slotFor({ a: 1 });
  assert.is(table.slotOnce("held", canonicalJson("held"), held.keyGroup), held, "a held key's own slot (its lock and handles)");
  assert.is(table.slotOnce({ a: 1 }, canonicalJson({ a: 1 }), obj.keyGroup), obj);
  const once = table.slotOnce("new", canonicalJson("new"), 7);
  assert.equal([once.key, once.keyId, once.keyGroup], ["new", canonicalJson("new"), 7]);
  assert.is.not(table.slotOnce("new", canonicalJson("new"), 7), once, "not kept");
  assert.is.not(table.slotFor("new"), once, "slotFor makes its own");
  for (let i = 0; i < 10; i++) table.slotFor(`filler-${i}`);
  assert.is.not(table.slotOnce("held", canonicalJson("held"), held.keyGroup), held, "a slot the table dropped is not returned");
});

slots("a key outside the subtask's key groups fails when first seen", () => {
  const table = new KeySlotTable("op", () => { throw new Error("key group 7 is outside [0, 3]"); });
  assert.throws(() => table.slotFor("x"), /outside/);
});

slots("a key's handles are built once and serve each of its records", () => {
  const table = new KeySlotTable("op", (key) => assignToKeyGroup(key, 128), 4);
  const count = valueState("count", t.number);
  const slot = table.slotFor("k");
  assert.is(slot.state(count), slot.state(count));
});

/** A heap backend answering every request in a batch after a random delay (a remote store). */
function remoteHeap(heap: HeapKeyedStateBackend, seed: number): KeyedStateBackend {
  let s = seed;
  const rand = () => ((s = (s * 1103515245 + 12345) & 0x7fffffff) / 0x7fffffff);
  return Object.assign(Object.create(heap) as KeyedStateBackend, {
    tryNow: () => NOT_APPLIED,
    executeBatch: (requests: readonly PendingStateRequest[]) => new Promise<void>((resolve) => setTimeout(() => resolve(heap.executeBatch(requests)), rand() * 3)),
  });
}

const history = valueState("history", t.array(t.number));

/** A record as the keyed operator builds one: run on the key's slot, its requests through the controller. */
class SlotRecord implements ControlledRecord {
  refs = 1;
  epoch!: Epoch;
  watermark: number | undefined = undefined;
  constructor(private readonly aec: AsyncExecutionController, private readonly slot: KeySlot, private readonly body: (slot: KeySlot) => Promise<void>) {}
  get lock(): KeySlot { return this.slot; }
  get key(): unknown { return this.slot.key; }
  run(): Promise<void> {
    this.slot.handler = this;
    return this.body(this.slot);
  }
  settle(): undefined { return undefined; }
  submit(request: StateRequest): Promise<unknown> { return this.aec.request(this, request); }
  tryNow(request: StateRequest): unknown { return this.aec.tryNow(this, request); }
}

slots("per-key order holds while the slot table drops old generations under load (property)", async () => {
  await fc.assert(fc.asyncProperty(
    fc.array(fc.integer({ min: 0, max: 11 }), { minLength: 20, maxLength: 120 }),
    fc.integer({ min: 1, max: 5 }),
    fc.integer({ min: 1, max: 1000 }),
    async (keyIndexes, capacity, seed) => {
      const heap = new HeapKeyedStateBackend(KeyGroupRange.forOperator(128, 1, 0));
      const aec = new AsyncExecutionController(remoteHeap(heap, seed), { bufferSize: 7, bufferTimeoutMs: 2, inFlightRecordsLimit: 25, watermarkMode: "strict" }, systemClock, (e) => { throw e; });
      const table = new KeySlotTable("op", (key) => assignToKeyGroup(key, 128), capacity);
      const running = new Set<string>();
      let overlap = false;
      const expected = new Map<string, number[]>();
      for (let seq = 0; seq < keyIndexes.length; seq++) {
        const key = `k${keyIndexes[seq]}`;
        expected.set(key, [...(expected.get(key) ?? []), seq]);
        const p = aec.submit(new SlotRecord(aec, table.slotFor(key), async (slot) => {
          if (running.has(slot.keyId)) overlap = true;
          running.add(slot.keyId);
          const h = slot.state(history);
          const prev = (await h.value()) ?? [];
          await h.update([...prev, seq]);
          running.delete(slot.keyId);
        }));
        if (p) await p;
        if (seq % 13 === 12) aec.inputIdle();
      }
      await aec.drain();
      aec.close();
      assert.not.ok(overlap, "two records of one key ran at once");
      const check = new KeySlotTable("op", (key) => assignToKeyGroup(key, 128));
      for (const [key, seqs] of expected) {
        const slot = check.slotFor(key);
        slot.handler = new DirectStateRequestHandler(heap);
        assert.equal(await slot.state(history).value(), seqs, `history of ${key}`);
      }
    },
  ), { numRuns: 30 });
});

slots.run();
