import { suite } from "uvu";
import * as assert from "uvu/assert";
import { mkdtempSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { compareRecords, SortBuffer, type BufferedRecord } from "../runtime/backlog/sort-buffer.ts";

const sort = suite("backlog sort buffer");
const dir = mkdtempSync(join(tmpdir(), "weir-sort-test-"));
sort.after(() => rmSync(dir, { recursive: true, force: true }));

function record(i: number, keys: number): Omit<BufferedRecord, "seq"> {
  const k = (i * 7919) % keys;
  return { keyGroup: k % 128, keyId: `"k${k}"`, watermark: i, timestamp: 1000 + i, input: 0, value: { i, pad: "x".repeat(50) } };
}

async function collect(b: SortBuffer): Promise<BufferedRecord[]> {
  const out: BufferedRecord[] = [];
  for await (const batch of b.drain(100)) out.push(...batch);
  return out;
}

sort("in memory: sorted by key group and key, each key's records in arrival order", async () => {
  const b = new SortBuffer({ memoryBytes: 1 << 30, diskBytes: 0, directory: dir, operator: "op" });
  for (let i = 0; i < 1000; i++) await b.add(record(i, 37));
  const out = await collect(b);
  assert.is(out.length, 1000);
  for (let i = 1; i < out.length; i++) assert.ok(compareRecords(out[i - 1]!, out[i]!) < 0);
  const k5 = out.filter((r) => r.keyId === '"k5"').map((r) => (r.value as { i: number }).i);
  assert.equal(k5, [...k5].sort((a, b) => a - b), "a key's records keep their arrival order");
  assert.is(b.spills, 0);
});

sort("over the memory budget: sorted runs spill to disk and merge back into one order", async () => {
  const b = new SortBuffer({ memoryBytes: 20_000, diskBytes: 10_000_000, directory: dir, operator: "op" });
  for (let i = 0; i < 5000; i++) await b.add(record(i, 101));
  assert.ok(b.spills > 10, `spilled ${b.spills} runs`);
  assert.ok(readdirSync(dir).length > 0, "runs are on disk");
  const out = await collect(b);
  assert.is(out.length, 5000);
  for (let i = 1; i < out.length; i++) assert.ok(compareRecords(out[i - 1]!, out[i]!) < 0, `order at ${i}`);
  assert.equal(new Set(out.map((r) => (r.value as { i: number }).i)).size, 5000, "nothing lost or duplicated");
  assert.equal(readdirSync(dir), [], "runs are removed after the merge");
});

sort("a backlog larger than memory and disk fails with the operator and the budget", async () => {
  const b = new SortBuffer({ memoryBytes: 10_000, diskBytes: 30_000, directory: dir, operator: "balances" });
  let error: Error | undefined;
  try {
    for (let i = 0; i < 5000; i++) await b.add(record(i, 10));
  } catch (e) {
    error = e as Error;
  }
  assert.ok(error);
  assert.match(error!.message, /operator "balances": the backlog does not fit the sort budget \(memory 0 MB, disk 0 MB/);
  b.cleanup();
});

sort.run();
