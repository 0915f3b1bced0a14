import { suite } from "uvu";
import * as assert from "uvu/assert";
import { assignToKeyGroup, keyHashCode, KeyGroupRange, operatorIndexForKey, operatorIndexForKeyGroup } from "../state/key-groups.ts";

const kg = suite("key groups");

// Reference values computed with Flink's KeyGroupRangeAssignment formula in Java (java.lang hashCode,
// MathUtils.murmurHash) for the same keys.
const reference: Array<[unknown, number, number, number]> = [
  // key, Java hashCode, key group (max 128), key group (max 4096)
  ["hello", 99162322, 35, 2723],
  ["world", 113318802, 66, 3394],
  ["user-1", -836031825, 121, 1657],
  ["user-42", -147182656, 20, 3732],
  ["", 0, 94, 2526],
  ["ä€😀", 16603051, 14, 3854],
  ["a-much-longer-key-with-many-characters-0123456789", 1381122819, 96, 1504],
  [0, 0, 94, 2526],
  [1, 1, 86, 4054],
  [42, 42, 29, 3613],
  [-7, -7, 33, 3489],
  [123456789, 123456789, 81, 2385],
  [-2147483648, -2147483648, 108, 2156],
  [1.5, 1073217536, 65, 833],
  [-0.25, -1076887552, 74, 1354],
  [1e21, -1834355276, 1, 3201],
  [true, 1231, 77, 3533],
  [false, 1237, 3, 3331],
];

kg("hashCode matches Java", () => {
  for (const [key, hash] of reference) assert.is(keyHashCode(key), hash, `hashCode(${String(key)})`);
});

kg("key group matches Flink for max parallelism 128 and 4096", () => {
  for (const [key, , g128, g4096] of reference) {
    assert.is(assignToKeyGroup(key, 128), g128, `keyGroup(${String(key)}, 128)`);
    assert.is(assignToKeyGroup(key, 4096), g4096, `keyGroup(${String(key)}, 4096)`);
  }
});

kg("operator index matches Flink (keyGroup * parallelism / maxParallelism)", () => {
  assert.is(operatorIndexForKey("hello", 128, 2), 0);
  assert.is(operatorIndexForKey("world", 128, 2), 1);
  assert.is(operatorIndexForKey("user-1", 128, 3), 2);
  assert.is(operatorIndexForKeyGroup(128, 3, 42), 0);
  assert.is(operatorIndexForKeyGroup(128, 3, 43), 1);
  assert.is(operatorIndexForKeyGroup(128, 3, 127), 2);
});

kg("key group ranges partition [0, max) and agree with operatorIndexForKeyGroup", () => {
  for (const p of [1, 2, 3, 5, 7, 128]) {
    const ranges = Array.from({ length: p }, (_, i) => KeyGroupRange.forOperator(128, p, i));
    assert.is(ranges[0]!.start, 0);
    assert.is(ranges[p - 1]!.end, 127);
    for (let i = 1; i < p; i++) assert.is(ranges[i]!.start, ranges[i - 1]!.end + 1);
    for (let g = 0; g < 128; g++) assert.ok(ranges[operatorIndexForKeyGroup(128, p, g)]!.contains(g), `p=${p} g=${g}`);
  }
  assert.equal(String(KeyGroupRange.forOperator(128, 3, 1)), "[43, 85]");
});

kg("a key keeps its key group at any parallelism", () => {
  for (const key of ["a", "b", "user-7", 99]) {
    const g = assignToKeyGroup(key, 128);
    for (const p of [1, 2, 3, 4, 8]) {
      const owner = operatorIndexForKey(key, 128, p);
      assert.ok(KeyGroupRange.forOperator(128, p, owner).contains(g));
    }
  }
});

kg.run();
