import { suite } from "uvu";
import * as assert from "uvu/assert";
import { mkdtempSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { SortBuffer } from "../runtime/keyed/backlog/sort-buffer.ts";
import type { SortedKey } from "../runtime/keyed/backlog/sorted-key.ts";

const sort = suite("backlog sort buffer");
const dir = mkdtempSync(join(tmpdir(), "weir-sort-test-"));
sort.after(() => rmSync(dir, { recursive: true, force: true }));

interface BacklogRecord { keyGroup: number; key: string; keyId: string; watermark: number; timestamp: number | undefined; input: number; value: { i: number; pad: string } }

const add = (b: SortBuffer, r: BacklogRecord) => b.add(r.key, () => r.keyGroup, r.watermark, r.timestamp, r.input, r.value);

const add2 = (b: SortBuffer, key: unknown, keyGroupOf: (k: unknown) => number, i: number) => b.add(key, keyGroupOf, Number.NEGATIVE_INFINITY, undefined, 0, { i, pad: "y".repeat(40) });

function record(i: number, keys: number): BacklogRecord {
  const k = (i * 7919) % keys;
  // Mostly the defaults (the buffer's starting watermark -Infinity, no timestamp, input 0), some not:
  // a key's first differing record must not change what its earlier records report.
  return { keyGroup: k % 128, key: `k${k}`, keyId: `"k${k}"`, watermark: i % 3 === 0 ? i : Number.NEGATIVE_INFINITY, timestamp: i % 7 === 0 ? 1000 + i : undefined, input: i % 11 === 0 ? 1 : 0, value: { i, pad: "x".repeat(50) } };
}

/** Drains the buffer; checks each key comes once, in key group order, and every record's fields survived. */
async function collect(b: SortBuffer): Promise<Array<{ keyId: string; i: number }>> {
  const out: Array<{ keyId: string; i: number }> = [];
  let previous: SortedKey | undefined;
  const keys: SortedKey[] = [];
  for await (const batch of b.drain(7)) {
    assert.ok(batch.length > 0 && batch.length <= 7, `batches of at most 7 keys, got ${batch.length}`);
    keys.push(...batch);
  }
  assert.is(new Set(keys.map((k) => k.keyId)).size, keys.length, "each key once");
  for (const key of keys) {
    if (previous) {
      const ordered = previous.keyGroup <= key.keyGroup;
      assert.ok(ordered, `key ${key.keyId} (group ${key.keyGroup}) after ${previous.keyId} (group ${previous.keyGroup})`);
    }
    previous = key;
    key.values.forEach((v, j) => {
      const i = (v as { i: number }).i;
      const expected = record(i, 1);
      assert.equal([key.watermark(j), key.timestamp(j), key.input(j)], [expected.watermark, expected.timestamp, expected.input], `fields of record ${i}`);
      out.push({ keyId: key.keyId, i });
    });
  }
  return out;
}

/** Each key's records in arrival order. */
function arrivalOrderPerKey(out: Array<{ keyId: string; i: number }>): void {
  const last = new Map<string, number>();
  for (const r of out) {
    assert.ok((last.get(r.keyId) ?? -1) < r.i, `key ${r.keyId}: record ${r.i} after ${last.get(r.keyId)}`);
    last.set(r.keyId, r.i);
  }
}

sort("in memory: grouped by key group, each key's records together in arrival order", async () => {
  const b = new SortBuffer({ memoryBytes: 1 << 30, diskBytes: 0, directory: dir, operator: "op" });
  for (let i = 0; i < 1000; i++) await add(b, record(i, 37));
  const out = await collect(b);
  assert.is(out.length, 1000);
  arrivalOrderPerKey(out);
  assert.is(new Set(out.map((r) => r.keyId)).size, 37);
  assert.is(b.spills, 0);
});

sort("over the memory budget: runs spill to disk and come back with each key's records together in arrival order", async () => {
  const b = new SortBuffer({ memoryBytes: 20_000, diskBytes: 10_000_000, directory: dir, operator: "op" });
  for (let i = 0; i < 5000; i++) await add(b, record(i, 101));
  assert.ok(b.spills > 10, `spilled ${b.spills} runs`);
  assert.ok(readdirSync(dir).length > 0, "runs are on disk");
  const out = await collect(b);
  assert.is(out.length, 5000);
  arrivalOrderPerKey(out);
  assert.equal(new Set(out.map((r) => r.i)).size, 5000, "nothing lost or duplicated");
  assert.equal(readdirSync(dir), [], "runs are removed after the merge");
});

sort("the memory estimate follows values that grow after the first 100k records (the mean of recent samples, not of all)", () => {
  const b = new SortBuffer({ memoryBytes: 2 ** 40, diskBytes: 0, directory: dir, operator: "op" });
  const small = "s".repeat(10);
  const large = "L".repeat(1000);
  for (let i = 0; i < 100_000; i++) void b.add(`k${i % 5000}`, () => i % 128, Number.NEGATIVE_INFINITY, undefined, 0, small);
  const before = b.estimatedMemoryBytes;
  for (let i = 0; i < 100_000; i++) void b.add(`k${i % 5000}`, () => i % 128, Number.NEGATIVE_INFINITY, undefined, 0, large);
  // A value weighs ~2.7 bytes a byte of its JSON (sort-buffer.ts): 100k of ~1 kB, less what the estimate takes to follow.
  const grown = b.estimatedMemoryBytes - before;
  assert.ok(grown > 0.75 * 2.7 * 100_000 * JSON.stringify(large).length, `the estimate grew by ${grown} bytes for 100k values of ${JSON.stringify(large).length} bytes of JSON`);
});

sort("a spill writes the largest key groups, about a quarter of the budget, and keeps the rest in memory", async () => {
  const b = new SortBuffer({ memoryBytes: 20_000, diskBytes: 10_000_000, directory: dir, operator: "op" });
  let i = 0;
  while (b.spills === 0) await add(b, record(i++, 101));
  const left = b.estimatedMemoryBytes;
  assert.ok(left > 12_000 && left < 17_000, `after the first spill ${left} of 20000 bytes stay in memory`);
  for (let j = 0; j < 2000; j++) await add(b, record(i++, 101));
  const out = await collect(b);
  assert.is(out.length, i);
  arrivalOrderPerKey(out);
  assert.equal(new Set(out.map((r) => r.i)).size, i, "nothing lost or duplicated");
});

sort("keys of different types stay apart (\"1\" and 1), object keys group by value, in memory and across spills", async () => {
  for (const memoryBytes of [1 << 30, 3000]) {
    const b = new SortBuffer({ memoryBytes, diskBytes: 10_000_000, directory: dir, operator: "op" });
    const keys: unknown[] = ["1", 1, { a: 1, b: 2 }, "x", [1, "1"]];
    const placed: string[] = [];
    const keyGroupOf = (k: unknown) => { placed.push(JSON.stringify(k)); return 7; };
    for (let i = 0; i < 200; i++) {
      // The object key arrives with its fields in either order: the same key.
      const k = i % 5 === 2 && i % 2 === 0 ? { b: 2, a: 1 } : keys[i % 5];
      await add2(b, k, keyGroupOf, i);
    }
    const got = new Map<string, number[]>();
    for await (const batch of b.drain()) for (const key of batch) got.set(key.keyId, [...(got.get(key.keyId) ?? []), ...key.values.map((v) => (v as { i: number }).i)]);
    assert.equal([...got.keys()].sort(), ['"1"', '"x"', "1", "[1,\"1\"]", '{"a":1,"b":2}'].sort(), `memory ${memoryBytes}`);
    for (const [keyId, is] of got) {
      assert.is(is.length, 40, `${keyId}: all its records`);
      assert.equal(is, [...is].sort((x, y) => x - y), `${keyId}: arrival order`);
    }
    if (memoryBytes === 1 << 30) assert.is(placed.length, 5, "each key placed once, when first seen");
  }
});

sort("folding on arrival: a folded key holds one value, applied in arrival order; after a spill never two folded values", async () => {
  // Not associative: the string shows exactly which values were combined, and in which order.
  const fold = (a: unknown, b: unknown) => `(${a as string}+${b as string})`;
  const sequential = (vs: string[]) => vs.reduce((a, b) => fold(a, b) as string);
  for (const memoryBytes of [1 << 30, 4000]) {
    const folded: string[] = [];
    const b = new SortBuffer({ memoryBytes, diskBytes: 10_000_000, directory: dir, operator: "op" }, Number.NEGATIVE_INFINITY, {
      // Keys k0, k2, k4 … start empty; the odd ones do not (their records must all be kept).
      canFold: (key) => { const fold = Number((key as string).slice(1)) % 2 === 0; if (fold) folded.push(key as string); return fold; },
      fold: (acc, v) => fold(acc, v),
    });
    const arrived = new Map<string, string[]>();
    for (let i = 0; i < 600; i++) {
      const key = `k${(i * 7) % 12}`;
      const value = `v${i}`;
      arrived.set(key, [...(arrived.get(key) ?? []), value]);
      await b.add(key, () => 3, i, i % 5 === 0 ? 1000 + i : undefined, 0, value);
    }
    let records = 0;
    let mixed = 0;
    for await (const batch of b.drain()) {
      for (const k of batch) {
        const key = JSON.parse(k.keyId) as string;
        records += k.count;
        if (k.size > 1 && (k.values[0] as string).includes("+")) mixed++;
        assert.ok((k.values as string[]).slice(1).every((v) => !v.includes("+")), `${key}: only the first value may be folded`);
        const all = arrived.get(key)!;
        assert.is(sequential(k.values as string[]), sequential(all), `${key} (memory ${memoryBytes}): the values fold to the same result`);
        // The last record's timestamp and watermark are what the key reports last.
        assert.is(k.watermark(k.size - 1), Number(all[all.length - 1]!.slice(1)), `${key}: last watermark`);
        if (memoryBytes === 1 << 30) {
          assert.is(k.size, folded.includes(key) ? 1 : all.length, `${key}: ${folded.includes(key) ? "one folded value" : "every record kept"}`);
          assert.is(k.count, all.length, `${key}: counts its records`);
        }
      }
    }
    assert.is(records, 600, `memory ${memoryBytes}: every record counted once`);
    if (memoryBytes === 4000) {
      assert.ok(b.spills > 0, "the small budget spilled");
      assert.ok(mixed > 0, "some key came back as one folded value followed by records kept after the spill");
    }
  }
});

sort("folded keys spilled without metadata (records at the defaults) come back with every record counted", async () => {
  const b = new SortBuffer({ memoryBytes: 4000, diskBytes: 10_000_000, directory: dir, operator: "op" }, Number.NEGATIVE_INFINITY, {
    canFold: () => true,
    fold: (acc, v) => `${acc as string}+${v as string}`,
  });
  const arrived = new Map<string, string[]>();
  for (let i = 0; i < 600; i++) {
    const key = `k${(i * 7) % 12}`;
    arrived.set(key, [...(arrived.get(key) ?? []), `v${i}`]);
    await b.add(key, () => 3, Number.NEGATIVE_INFINITY, undefined, 0, `v${i}`);
  }
  assert.ok(b.spills > 0, "the small budget spilled");
  let records = 0;
  for await (const batch of b.drain()) {
    for (const k of batch) {
      const key = JSON.parse(k.keyId) as string;
      records += k.count;
      assert.is((k.values as string[]).join("+"), arrived.get(key)!.join("+"), `${key}: its values in arrival order`);
      assert.is(k.watermark(0), Number.NEGATIVE_INFINITY, `${key}: no metadata`);
    }
  }
  assert.is(records, 600, "every record counted once");
});

sort("a key group too large for memory is split by key on disk: every key once, whole, in arrival order (multi-byte text intact)", async () => {
  // One key group: its spilled text is many times the budget's share for one group.
  const b = new SortBuffer({ memoryBytes: 8_000, diskBytes: 100_000_000, directory: dir, operator: "op" });
  const text = (i: number) => `é€😀-${i}-`.repeat(1 + (i % 13));
  for (let i = 0; i < 4000; i++) await b.add(`k${(i * 31) % 257}`, () => 5, i, i % 4 === 0 ? i : undefined, 0, { i, text: text(i) });
  assert.ok(b.spills > 20, `spilled ${b.spills} runs`);
  const seen = new Map<string, number[]>();
  let batches = 0;
  for await (const batch of b.drain(50)) {
    batches++;
    for (const k of batch) {
      assert.not.ok(seen.has(k.keyId), `${k.keyId} comes once`);
      const is = k.values.map((v, j) => {
        const { i, text: t } = v as { i: number; text: string };
        assert.is(t, text(i), `record ${i}: text survived`);
        assert.equal([k.watermark(j), k.timestamp(j)], [i, i % 4 === 0 ? i : undefined], `record ${i}: fields`);
        return i;
      });
      seen.set(k.keyId, is);
    }
  }
  assert.is(seen.size, 257);
  for (const [keyId, is] of seen) assert.equal(is, [...is].sort((x, y) => x - y), `${keyId}: arrival order`);
  assert.is([...seen.values()].reduce((n, is) => n + is.length, 0), 4000, "every record once");
  assert.ok(batches > 5, `in batches (${batches})`);
  assert.equal(readdirSync(dir), [], "runs and parts are removed after the drain");
});

sort("a backlog larger than memory and disk fails with the operator and the budget", async () => {
  const b = new SortBuffer({ memoryBytes: 10_000, diskBytes: 30_000, directory: dir, operator: "balances" });
  let error: Error | undefined;
  try {
    for (let i = 0; i < 5000; i++) await add(b, record(i, 10));
  } catch (e) {
    error = e as Error;
  }
  assert.ok(error);
  assert.match(error!.message, /operator "balances": the backlog does not fit the sort budget \(memory 0 MB, disk 0 MB/);
  b.cleanup();
});

sort.run();
