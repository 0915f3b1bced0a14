import { suite } from "uvu";
import * as assert from "uvu/assert";
import { BufferedKeys } from "../runtime/keyed/backlog/buffered-keys.ts";
import type { SortedKey } from "../runtime/keyed/backlog/sorted-key.ts";

const columns = suite("backlog sort buffer: keys and records in columns");

const NO_WATERMARK = Number.NEGATIVE_INFINITY;

/** A key's records as plain data: values, then [watermark, timestamp, input] of each. */
const recordsOf = (k: SortedKey) => k.values.map((v, i) => [v, k.watermark(i), k.timestamp(i), k.input(i)]);

columns("many keys, records interleaved past the first capacity: each key's records in arrival order", () => {
  const keys = new BufferedKeys(NO_WATERMARK);
  // Each key gets its first record when it comes (the key columns grow under keys with records), then more.
  const slots: number[] = [];
  for (let i = 0; i < 3000; i++) {
    slots.push(keys.newKey(`k${i}`, true, i % 7, false));
    keys.push(slots[i]!, `${i}/0`, NO_WATERMARK, undefined, 0);
  }
  for (let round = 1; round < 3; round++) for (let i = 0; i < slots.length; i++) keys.push(slots[i]!, `${i}/${round}`, NO_WATERMARK, undefined, 0);
  for (let i = 0; i < slots.length; i += 499) {
    const k = keys.take(slots[i]!);
    assert.is(k.keyId, `"k${i}"`, "a string key's id is its JSON");
    assert.is(k.keyGroup, i % 7);
    assert.equal(k.values, [`${i}/0`, `${i}/1`, `${i}/2`]);
    assert.is(k.count, 3);
    assert.is(k.watermark(2), NO_WATERMARK, "no metadata: the defaults");
  }
});

columns("metadata kept from the first record that differs; earlier records report the defaults", () => {
  const keys = new BufferedKeys(NO_WATERMARK);
  const a = keys.newKey("a", true, 0, false);
  const b = keys.newKey("b", true, 0, false);
  keys.push(a, 1, NO_WATERMARK, undefined, 0);
  keys.push(b, 2, NO_WATERMARK, undefined, 0);
  keys.push(a, 3, 100, 42, 1);
  keys.push(a, 4, NO_WATERMARK, undefined, 0);
  assert.equal(recordsOf(keys.take(a)), [[1, NO_WATERMARK, undefined, 0], [3, 100, 42, 1], [4, NO_WATERMARK, undefined, 0]]);
  assert.equal(recordsOf(keys.take(b)), [[2, NO_WATERMARK, undefined, 0]], "a key whose records are all at the defaults");
});

columns("a taken key's slots are reused by later keys without mixing their records", () => {
  const keys = new BufferedKeys(NO_WATERMARK);
  const first = Array.from({ length: 50 }, (_, i) => keys.newKey(`old${i}`, true, 1, false));
  for (const k of first) for (let r = 0; r < 4; r++) keys.push(k, `old-${k}-${r}`, r, undefined, 0);
  // The old keys go (a spill), new ones come and take their slots; the one kept old key is intact.
  for (const k of first.slice(1)) keys.take(k);
  const later = Array.from({ length: 60 }, (_, i) => keys.newKey(`new${i}`, true, 2, false));
  for (const k of later) keys.push(k, `new-${k}`, NO_WATERMARK, undefined, 0);
  keys.push(first[0]!, "old-last", 9, undefined, 0);
  const kept = keys.take(first[0]!);
  assert.equal(kept.values, [0, 1, 2, 3].map((r) => `old-${first[0]}-${r}`).concat("old-last"));
  assert.equal([0, 1, 2, 3, 4].map((i) => kept.watermark(i)), [0, 1, 2, 3, 9]);
  for (const k of later) {
    const taken = keys.take(k);
    assert.equal(taken.values, [`new-${k}`], `key ${taken.keyId}: only its own record`);
    assert.is(taken.watermark(0), NO_WATERMARK, `key ${taken.keyId}: a reused record slot's metadata is its own`);
  }
});

columns("a folding key holds one value, the last record's metadata, and counts every record", () => {
  const keys = new BufferedKeys(NO_WATERMARK);
  const k = keys.newKey('{"id":1}', false, 3, true);
  const fold = { canFold: () => true, fold: (acc: unknown, v: unknown) => `${acc as string}+${v as string}` };
  for (let i = 0; i < 5; i++) keys.fold(k, `v${i}`, fold, { id: 1 }, i === 4 ? 7 : NO_WATERMARK, undefined, 0);
  const taken = keys.take(k);
  assert.is(taken.keyId, '{"id":1}', "another key's id is the map key it was given");
  assert.equal(taken.values, ["v0+v1+v2+v3+v4"]);
  assert.is(taken.count, 5);
  assert.ok(taken.folding);
  assert.is(taken.watermark(0), 7);
});

columns.run();
