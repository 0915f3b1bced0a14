// A wave of KV writes (a flush, a checkpoint's materialization: entry-writes.ts writeWave) against a real
// server: every entry's value lands (one message, chunked, or erased), the entry is marked clean, no more
// than the concurrency pending, failures reported or stopping the wave, and a closed pipe fails every
// write of a large wave without the synchronous failures recursing.
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { Kvm, type KV } from "@nats-io/kv";
import type { NatsConnection } from "@nats-io/transport-node";
import { withServer } from "./helpers/nats-server.ts";
import { connectTo } from "./state-support.ts";
import { CacheEntry, EntryKind, StateCache } from "../state/backends/jetstream-kv/cache.ts";
import { writeWave, type EntryWrite } from "../state/backends/jetstream-kv/entry-writes.ts";
import { KvPipe } from "../state/backends/jetstream-kv/pipe.ts";
import { RemoteValues } from "../state/backends/jetstream-kv/remote-values.ts";

const s = suite("jetstream-kv state backend: write waves");
const server = withServer(s);
let nc: NatsConnection;
s.before(async () => { nc = await connectTo(server.url); });
s.after(async () => { await nc?.close(); });

let buckets = 0;
/** A fresh bucket and a pipe over it; values over 1 KB are chunked (max payload 2 KB). */
async function open(): Promise<{ pipe: KvPipe; remote: RemoteValues; cache: StateCache; kv: KV }> {
  const bucket = `wave_${process.pid}_${++buckets}`;
  const kv = await new Kvm(nc).create(bucket, { history: 1 });
  const pipe = new KvPipe(nc, bucket, { getWindow: 64, writeWindow: 64, timeoutMs: 10_000 });
  return { pipe, remote: new RemoteValues(pipe, 2048), cache: new StateCache(1_000_000, 1 << 30), kv };
}

/** `n` dirty entries `k0..`: most small, every 50th over a message (chunked). */
function dirtyEntries(cache: StateCache, n: number): CacheEntry[] {
  return Array.from({ length: n }, (_, i) => {
    const e = new CacheEntry(`k${i}`, EntryKind.Value, 0, undefined, 0);
    e.json = JSON.stringify(i % 50 === 7 ? "x".repeat(3000) + i : { n: i });
    cache.insert(e);
    cache.markDirty(e);
    return e;
  });
}

const asWrite = (e: CacheEntry): EntryWrite => ({ entry: e, json: e.json, version: e.version });

s("every entry's value lands in KV (one message or chunked) and the entry is clean; never more than the concurrency pending", async () => {
  const { pipe, remote, cache, kv } = await open();
  try {
    const entries = dirtyEntries(cache, 3000);
    const concurrency = 8;
    let started = 0;
    let most = 0;
    await writeWave(remote, cache, entries, concurrency, (e) => {
      // Finished writes are the entries marked clean since the wave began.
      const pending = ++started - (entries.length - cache.dirty.size);
      most = Math.max(most, pending);
      return asWrite(e);
    });
    assert.is(started, entries.length);
    assert.ok(most <= concurrency && most > 1, `at most ${concurrency} pending, and more than one (${most})`);
    assert.is(cache.dirty.size, 0, "every entry clean");
    for (const i of [0, 7, 57, 1234, 2999]) {
      const stored = await remote.read(`k${i}`);
      assert.ok(stored.seq > 0, `k${i} has a message`);
      assert.equal(JSON.parse(Buffer.from(stored.data!).toString()), i % 50 === 7 ? "x".repeat(3000) + i : { n: i }, `k${i}`);
    }
    assert.ok(entries[7]!.chunks !== undefined && entries[0]!.chunks === undefined, "the long value was chunked");
    assert.ok(entries.every((e) => e.kvHolds === true), "KV holds every key");
    // The sequence each entry noted is its key's message (an erasure deletes by it).
    for (const i of [0, 1, 7, 999, 2999]) assert.is(entries[i]!.kvSeq, (await kv.get(`k${i}`))?.revision, `k${i}'s message`);
    // An erasure in a wave: the key is gone from KV, the entry leaves the cache.
    const gone = entries[0]!;
    cache.markDirty(gone);
    gone.value = undefined;
    await writeWave(remote, cache, [gone], concurrency, (e) => ({ entry: e, json: undefined, version: e.version }));
    const erased = await remote.read("k0");
    assert.equal([erased.data, erased.seq], [undefined, 0], "no message left under the key");
    assert.is(cache.peek("k0", 0), undefined);
  } finally {
    pipe.close();
  }
});

s("a wave with its window full starts writes a quarter of the window at a time, not one per ack (one socket write each)", async () => {
  const { pipe, remote, cache } = await open();
  try {
    const entries = dirtyEntries(cache, 3000);
    const concurrency = 64;
    // Writes started in one synchronous run (before the next microtask) form one batch.
    const batches: number[] = [];
    let running = false;
    await writeWave(remote, cache, entries, concurrency, (e) => {
      if (!running) {
        running = true;
        batches.push(0);
        queueMicrotask(() => { running = false; });
      }
      batches[batches.length - 1]!++;
      return asWrite(e);
    });
    assert.is(cache.dirty.size, 0, "every entry written");
    assert.is(batches.reduce((a, b) => a + b, 0), entries.length);
    assert.is(batches[0], concurrency, "the first batch fills the window");
    // The last batch takes what is left.
    const refills = batches.slice(1, -1);
    assert.ok(refills.length > 0 && refills.every((n) => n >= concurrency / 4), `refills of at least ${concurrency / 4}: ${refills.filter((n) => n < concurrency / 4).length} of ${refills.length} smaller (${refills.slice(0, 20).join(", ")}…)`);
  } finally {
    pipe.close();
  }
});

s("a failure: with onFailure reported and the wave goes on; without it, the wave rejects and starts no more", async () => {
  const { pipe, remote, cache } = await open();
  try {
    const entries = dirtyEntries(cache, 200);
    const reported: string[] = [];
    await writeWave(remote, cache, entries, 16, (e) => {
      if (e.key === "k5") throw new Error("cannot serialize k5");
      return asWrite(e);
    }, (err) => reported.push((err as Error).message));
    assert.equal(reported, ["cannot serialize k5"]);
    assert.equal(cache.dirty.entries().map((e) => e.key), ["k5"], "only the failed entry stays dirty");

    const more = dirtyEntries(cache, 200).slice(100);
    let prepared = 0;
    const error = await writeWave(remote, cache, more, 4, (e) => {
      prepared++;
      if (e.key === "k102") throw new Error("cannot serialize k102");
      return asWrite(e);
    }).then(() => undefined, (err: Error) => err);
    assert.is(error?.message, "cannot serialize k102");
    await new Promise((r) => setTimeout(r, 100));
    assert.is(prepared, 3, "nothing starts after the failure");
  } finally {
    pipe.close();
  }
});

s("a closed pipe: every write of a 100k-entry wave fails at once, reported, and the entries stay dirty", async () => {
  const { pipe, remote, cache } = await open();
  pipe.close("the state backend is closed");
  const entries = dirtyEntries(cache, 100_000);
  let failures = 0;
  await writeWave(remote, cache, entries, 1024, asWrite, () => { failures++; });
  assert.is(failures, entries.length);
  assert.is(cache.dirty.size, entries.length);
  const error = await writeWave(remote, cache, entries, 1024, asWrite).then(() => undefined, (err: Error) => err);
  assert.match(error?.message ?? "", /closed/);
});

s.run();
