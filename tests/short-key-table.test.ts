// The table of short string keys that the backlog sort buffer looks keys up in
// (runtime/keyed/backlog/short-key-table.ts): against a Map, over keys that fit and keys that do not.
import { suite } from "uvu";
import * as assert from "uvu/assert";
import fc from "fast-check";
import { SHORT_KEY_MAX_LENGTH, ShortKey, StringKeyIndex } from "../runtime/keyed/backlog/short-key-table.ts";

const s = suite("short key table");

// Short keys over a few characters (so that many collide in a row's low bits), the longest that fit, too
// long ones, characters of 256 and more, and the empty key.
const key = fc.oneof(
  fc.stringMatching(/^[ab\u0000\u00ff]{0,6}$/),
  fc.string({ minLength: SHORT_KEY_MAX_LENGTH - 1, maxLength: SHORT_KEY_MAX_LENGTH + 1, unit: fc.constantFrom("a", "b") }),
  fc.constantFrom("\u0100", "a\u0100", "key-1", "key-10", "😀"),
);

s("it answers as a Map does through any sequence of sets, deletes and lookups, as it grows", () => {
  const op = fc.record({ kind: fc.constantFrom("set", "set", "delete", "get"), key, value: fc.nat({ max: 2 ** 31 - 1 }) });
  fc.assert(fc.property(fc.array(op, { maxLength: 300 }), (ops) => {
    const index = new StringKeyIndex();
    const model = new Map<string, number>();
    for (const o of ops) {
      if (o.kind === "set") { index.set(o.key, o.value); model.set(o.key, o.value); }
      else if (o.kind === "delete") assert.is(index.delete(o.key), model.delete(o.key), `delete ${JSON.stringify(o.key)}`);
      else assert.is(index.get(o.key), model.get(o.key) ?? -1, `get ${JSON.stringify(o.key)}`);
      assert.is(index.size, model.size);
    }
    for (const [k, v] of model) assert.is(index.get(k), v, `at the end: ${JSON.stringify(k)}`);
  }), { numRuns: 1500 });
});

s("many keys: every one is found after growth and after half of them are deleted", () => {
  const index = new StringKeyIndex();
  const n = 50_000;
  for (let i = 0; i < n; i++) index.set(`key-${i}`, i);
  for (let i = 0; i < n; i += 2) assert.ok(index.delete(`key-${i}`));
  for (let i = 0; i < n; i++) assert.is(index.get(`key-${i}`), i % 2 === 0 ? -1 : i);
  assert.is(index.size, n / 2);
});

s("a key fits when it has at most 16 characters, each below 256; packing tells keys apart by length too", () => {
  const k = new ShortKey();
  assert.ok(k.of("x".repeat(SHORT_KEY_MAX_LENGTH)));
  assert.not.ok(k.of("x".repeat(SHORT_KEY_MAX_LENGTH + 1)));
  assert.not.ok(k.of("\u0100"));
  assert.ok(k.of("\u00ff"));
  const index = new StringKeyIndex();
  index.set("a", 1);
  index.set("a\u0000", 2);
  index.set("", 3);
  assert.is(index.get("a"), 1);
  assert.is(index.get("a\u0000"), 2);
  assert.is(index.get(""), 3);
});

s.run();
