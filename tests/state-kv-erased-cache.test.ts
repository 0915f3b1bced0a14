// The jetstream-kv backend's cache does not keep state that was removed: once KV acknowledged a removal
// (a window's accumulator cleared when the window fires), the absent entry leaves the cache instead of
// waiting for the cache bound to evict it. A long-running windowed job's cache (and memory) stays flat.
// And the races around it: a write after the removal was captured, overlapping checkpoints.
import { suite } from "uvu";
import * as assert from "uvu/assert";
import * as t from "io-ts";
import type { NatsConnection } from "@nats-io/transport-node";
import { withServer } from "./helpers/nats-server.ts";
import { within } from "./helpers/cli.ts";
import { valueState } from "../state/descriptors.ts";
import { createStateHandle } from "../state/handles/create.ts";
import { DirectStateRequestHandler } from "../state/handlers/direct.ts";
import { createKeyedStateBackend } from "../state/factory.ts";
import type { KeyedStateBackend, StateAddress, StateSnapshot } from "../state/contracts.ts";
import { stateRequest } from "../state/requests.ts";
import type { StateBackendConfig } from "../state/config.ts";
import type { JobNames } from "../runtime/core/names.ts";
import { connectTo, freshJob, FULL_RANGE, MAX_PARALLELISM, openBackend, scopeOf } from "./state-support.ts";

const s = suite("jetstream-kv state backend: removed state leaves the cache");
const server = withServer(s);
let nc: NatsConnection;
s.before(async () => { nc = await connectTo(server.url); });
s.after(async () => { await nc?.close(); });

const acc = valueState("window-acc", t.number);
const N = 400;
const keys = Array.from({ length: N }, (_, i) => `k${i}`);

function openCheckpointed(names: JobNames, config: Partial<StateBackendConfig> = {}): Promise<KeyedStateBackend> {
  return createKeyedStateBackend({
    kind: "jetstream-kv", nc, names, keyGroupRange: FULL_RANGE, maxParallelism: MAX_PARALLELISM, vertexUid: "v1",
    config: { durability: "checkpoint", flushIntervalMs: 10, materializeIntervalMs: 0, ...config },
  });
}

function accOf(backend: KeyedStateBackend, key: string) {
  return createStateHandle(acc, scopeOf(key), new DirectStateRequestHandler(backend));
}

/** A new backend over the same bucket reads the first keys as absent: KV holds nothing under them. */
async function assertAbsentInKv(names: JobNames): Promise<void> {
  const r = await openCheckpointed(names);
  try {
    for (const k of keys.slice(0, 20)) assert.is(await accOf(r, k).value(), undefined, `${k} is absent in KV`);
  } finally {
    await r.close();
  }
}

async function checkpoint(b: KeyedStateBackend, id: number): Promise<void> {
  await b.snapshot!(id);
  await b.notifyCheckpointComplete!(id);
}

s("checkpoints: cleared state leaves the cache once its removal is materialized, and reads as absent", async () => {
  const names = freshJob("erc");
  const b = await openCheckpointed(names);
  try {
    for (const [i, k] of keys.entries()) await accOf(b, k).update(i + 1);
    await checkpoint(b, 1);
    assert.is(b.metrics().cacheEntries, N, "the written values stay cached (clean)");
    for (const k of keys) await accOf(b, k).clear();
    assert.is(b.metrics().cacheEntries, N, "removals not yet in KV: the entries stay (dirty)");
    await checkpoint(b, 2); // materializes: KV acknowledges every removal
    const m = b.metrics();
    assert.is(m.cacheEntries, 0, `no absent entry kept after its removal reached KV (${m.cacheEntries} cached)`);
    assert.is(m.cacheBytes, 0, "nor its bytes");
    assert.is(m.dirtyEntries, 0);
    assert.is(m.evictions, 0, "left without eviction pressure");
    for (const k of keys) assert.is(await accOf(b, k).value(), undefined, `${k} reads as absent`);
    assert.is(b.metrics().remoteReads, m.remoteReads, "known absent: reading removed state costs no KV read");
  } finally {
    await b.close();
  }
  await assertAbsentInKv(names);
});

s("flush durability: cleared state leaves the cache once the flush erased it", async () => {
  const names = freshJob("erf");
  const b = await openBackend("jetstream-kv", nc, names, { flushIntervalMs: 0 });
  try {
    for (const [i, k] of keys.entries()) await accOf(b, k).update(i + 1);
    await b.flush();
    for (const k of keys) await accOf(b, k).clear();
    await b.flush();
    assert.is(b.metrics().cacheEntries, 0, `no absent entry kept after the flush erased it (${b.metrics().cacheEntries} cached)`);
    for (const k of keys.slice(0, 20)) assert.is(await accOf(b, k).value(), undefined, `${k} reads as absent`);
  } finally {
    await b.close();
  }
});

s("a write after the removal was captured: the entry stays with its new value, and the next checkpoint writes it", async () => {
  const names = freshJob("erw");
  const b = await openCheckpointed(names);
  try {
    await accOf(b, "k").update(1);
    await checkpoint(b, 1);
    await accOf(b, "k").clear();
    await b.snapshot!(2); // captures the removal
    await accOf(b, "k").update(2); // before checkpoint 2 completes and is materialized
    await b.notifyCheckpointComplete!(2); // erases k in KV
    assert.is(await accOf(b, "k").value(), 2, "the newer write is what k holds");
    assert.is(b.metrics().dirtyEntries, 1, "still to be written");
    await checkpoint(b, 3);
  } finally {
    await b.close();
  }
  const r = await openCheckpointed(names);
  try {
    assert.is(await accOf(r, "k").value(), 2, "KV holds the newer write");
  } finally {
    await r.close();
  }
});

/**
 * k = 1 in KV; k cleared and captured by two overlapping checkpoints (2 and 3); checkpoint 2 materializes
 * (the entry leaves the cache); k written again (a new cache entry) and captured by checkpoint 4, while
 * checkpoint 3 still holds the old, removed entry.
 */
async function overlapping(names: JobNames): Promise<{ b: KeyedStateBackend; s3: StateSnapshot; s4: StateSnapshot }> {
  const b = await openCheckpointed(names, { materializeIntervalMs: 600_000 });
  await accOf(b, "k").update(1);
  await checkpoint(b, 1);
  await b.flush(); // materializes what completed
  await accOf(b, "k").clear();
  await b.snapshot!(2);
  const s3 = await b.snapshot!(3);
  await b.notifyCheckpointComplete!(2);
  await b.flush();
  assert.is(b.metrics().cacheEntries, 0, "the removal reached KV: the entry left the cache");
  await accOf(b, "k").update(5);
  const s4 = await b.snapshot!(4);
  return { b, s3, s4 };
}

s("overlapping checkpoints: the removed entry a pending checkpoint still holds does not undo a newer write", async () => {
  const crashed = freshJob("ero");
  const { b, s3, s4 } = await overlapping(crashed);
  try {
    assert.is(s4.entries, 1, "checkpoint 4 holds k once, with its new value");
    // A crash before checkpoints 3 and 4 are materialized: their deltas are replayed, oldest first.
    const r = await openCheckpointed(crashed);
    try {
      await r.restore!([s3, s4]);
      assert.is(await accOf(r, "k").value(), 5, "the restored checkpoint 4 holds the newer write");
    } finally {
      await r.close();
    }
  } finally {
    b.dispose();
  }

  // No crash: checkpoints 3 and 4 are materialized together; the old removal is not written again.
  const names = freshJob("ero");
  const { b: c } = await overlapping(names);
  try {
    await c.notifyCheckpointComplete!(3);
    await c.notifyCheckpointComplete!(4);
    const before = c.metrics().remoteWrites;
    await c.flush();
    assert.is(c.metrics().remoteWrites - before, 1 + MAX_PARALLELISM, "one put of k, one marker per key group: no stale erase of k racing it");
  } finally {
    await c.close();
  }
  const r = await openCheckpointed(names);
  try {
    assert.is(await accOf(r, "k").value(), 5);
  } finally {
    await r.close();
  }
});

s("state created and cleared between two materializations costs no KV write; state KV holds is erased", async () => {
  const names = freshJob("ern");
  const b = await openCheckpointed(names);
  try {
    await checkpoint(b, 1);
    // Read first (as an aggregate does): known absent in KV; then written and cleared before any checkpoint.
    for (const [i, k] of keys.entries()) { assert.is(await accOf(b, k).value(), undefined); await accOf(b, k).update(i + 1); }
    for (const k of keys) await accOf(b, k).clear();
    const before = b.metrics().remoteWrites;
    await checkpoint(b, 2);
    assert.is(b.metrics().remoteWrites - before, MAX_PARALLELISM, "only the materialized markers: no erase of keys KV never held");
    assert.is(b.metrics().cacheEntries, 0);
    // Written and materialized, then cleared: KV holds them, so each is erased.
    for (const [i, k] of keys.entries()) await accOf(b, k).update(i + 1);
    await checkpoint(b, 3);
    for (const k of keys) await accOf(b, k).clear();
    const beforeErase = b.metrics().remoteWrites;
    await checkpoint(b, 4);
    assert.is(b.metrics().remoteWrites - beforeErase, N + MAX_PARALLELISM, "one erase per key KV held, and the markers");
  } finally {
    await b.close();
  }
  await assertAbsentInKv(names);
});

s("checkpoints: writers wait while KV materializations fall behind, and go on once KV takes the writes", async () => {
  const names = freshJob("erb");
  // floor: dirtyMaxEntries / 8 = 100 entries
  const b = await openCheckpointed(names, { dirtyMaxEntries: 800 });
  let resumed = false;
  try {
    for (let i = 0; i < 400; i++) await accOf(b, `a${i}`).update(i);
    await b.snapshot!(1);
    for (let i = 0; i < 500; i++) await accOf(b, `b${i}`).update(i);
    await b.snapshot!(2);
    process.kill(server.server.pid, "SIGSTOP"); // KV stops answering: checkpoint 1's materialization hangs
    const first = b.notifyCheckpointComplete!(1);
    const second = b.notifyCheckpointComplete!(2); // 500 entries queue behind the 400 being written
    let written = false;
    const write = accOf(b, "late").update(1).then(() => { written = true; });
    await new Promise((r) => setTimeout(r, 300));
    assert.not.ok(written, "a write waits while more committed entries queue than KV is taking");
    process.kill(server.server.pid, "SIGCONT");
    resumed = true;
    if ((await within(Promise.all([write, first, second]).then(() => true), 30_000)) === undefined) throw new Error("no progress 30 s after KV returned");
    assert.ok(written);
    assert.is(await accOf(b, "b499").value(), 499);
    assert.is(await accOf(b, "late").value(), 1);
  } finally {
    if (!resumed) process.kill(server.server.pid, "SIGCONT");
    await b.close();
  }
});

s("a full cache: a new key reads as absent at once (no batch, no entry), and removing it before it reached KV costs no erase", async () => {
  const names = freshJob("erfull");
  // Uncommitted writes stay dirty (checkpoint durability): 20 of them hold a 10-entry cache over its bound.
  const b = await openCheckpointed(names, { cacheMaxEntries: 10 });
  try {
    const writeAll = async (base: number) => { for (let i = 0; i < 20; i++) await accOf(b, `f${i}`).update(base + i); };
    await writeAll(0);
    const before = b.metrics();
    const writesBefore = before.remoteWrites;
    await checkpoint(b, 1);
    const perCheckpoint = b.metrics().remoteWrites - writesBefore; // 20 values and the key groups' markers
    await writeAll(100);
    const full = b.metrics().cacheEntries;
    assert.ok(full > 10, `the cache is over its bound (${full} entries)`);
    const fresh = accOf(b, "fresh");
    const read = stateRequest.get((fresh as unknown as { address: StateAddress }).address);
    assert.is(b.tryNow(read), undefined, "answered at once: KV cannot hold a key of a new bucket that was never written");
    assert.is(b.metrics().cacheEntries, full, "no entry added to a full cache");
    await fresh.update(7);
    await fresh.clear();
    const writes = b.metrics().remoteWrites;
    await checkpoint(b, 2);
    assert.is(b.metrics().remoteWrites - writes, perCheckpoint, "the same writes as the checkpoint before: none for the key created and removed in between");
    assert.is(await accOf(b, "f19").value(), 119);
  } finally {
    await b.close();
  }
});

s.run();
