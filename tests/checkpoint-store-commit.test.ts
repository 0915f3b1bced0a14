// The checkpoint store's commit is a compare-and-set done as a stream append with an expected last
// sequence (safe on replicated buckets, unlike KV update on nats-server 2.9.10): of two runs committing
// on the same latest checkpoint exactly one wins, the loser's error names the cause, and the id block
// reservation refuses a block another run took. Also: a store written before keeps restoring.
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { connect } from "@nats-io/transport-node";
import { Kvm } from "@nats-io/kv";
import { withServer } from "./helpers/nats-server.ts";
import { CheckpointStore } from "../runtime/checkpoint/store.ts";
import { JobNames } from "../runtime/core/names.ts";
import type { CheckpointMetadata } from "../runtime/checkpoint/metadata.ts";

const s = suite("checkpoint store commit");
const nats = withServer(s);

async function errorOf(f: () => Promise<unknown>): Promise<string> {
  try { await f(); } catch (e) { return (e as Error).message; }
  assert.unreachable("expected a rejection");
  return "";
}

const meta = (job: string, id: number): CheckpointMetadata => ({
  job, id, kind: "checkpoint", triggeredAt: id, completedAt: id, maxParallelism: 128, parallelism: { a: 1 }, subtasks: [],
});

s("two runs commit on the same latest: exactly one wins, the other is told another run moved it", async () => {
  const nc = await connect({ servers: nats.url });
  try {
    const names = new JobNames("cas1");
    const a = await CheckpointStore.open(nc, names);
    const b = await CheckpointStore.open(nc, names);
    const first = await a.commit(meta("cas1", 1), 0);
    const results = await Promise.allSettled([a.commit(meta("cas1", 2), first), b.commit(meta("cas1", 3), first)]);
    assert.is(results.filter((r) => r.status === "fulfilled").length, 1, JSON.stringify(results.map((r) => r.status)));
    const lost = results.find((r) => r.status === "rejected") as PromiseRejectedResult;
    assert.match((lost.reason as Error).message, /another run moved the latest checkpoint/);
    const winner = results[0]!.status === "fulfilled" ? 2 : 3;
    assert.is((await (await CheckpointStore.open(nc, names)).latest())?.pointer.id, winner);
    // A stale revision loses even with no one racing.
    assert.match(await errorOf(() => b.commit(meta("cas1", 4), first)), /another run moved/);
  } finally {
    await nc.close();
  }
});

s("id blocks: a run that expects its own last block is refused once another run reserved", async () => {
  const nc = await connect({ servers: nats.url });
  try {
    const names = new JobNames("cas2");
    const a = await CheckpointStore.open(nc, names);
    const b = await CheckpointStore.open(nc, names);
    const ra = await a.reserveIds(0, 10);
    assert.equal(ra, { first: 1, last: 10 });
    const rb = await b.reserveIds(0, 10);
    assert.equal(rb, { first: 11, last: 20 });
    assert.match(await errorOf(() => a.reserveIds(10, 10, ra.last)), /reserved by another run \(expected 10, found 20\)/);
    assert.equal(await b.reserveIds(20, 5, rb.last), { first: 21, last: 25 });
  } finally {
    await nc.close();
  }
});

s("a store whose latest was written by KV (before this change) restores and commits on", async () => {
  const nc = await connect({ servers: nats.url });
  try {
    const names = new JobNames("cas3");
    const kv = await new Kvm(nc).create(names.checkpointBucket, { history: 1 });
    await kv.put("checkpoint.000000000007.part.0", JSON.stringify(meta("cas3", 7)));
    await kv.put("checkpoint.000000000007", JSON.stringify({ parts: 1, kind: "checkpoint", completedAt: 7 }));
    const rev = await kv.create("latest", JSON.stringify({ id: 7, kind: "checkpoint", completedAt: 7, retained: [7] }));
    await kv.create("ids", "9");
    const store = await CheckpointStore.open(nc, names);
    const latest = await store.latest();
    assert.is(latest?.pointer.id, 7);
    assert.is(latest?.revision, rev);
    assert.is((await store.read(7))?.id, 7);
    assert.equal(await store.reserveIds(7, 5), { first: 10, last: 14 });
    await store.commit(meta("cas3", 10), rev, 3);
    assert.equal((await store.latest())?.pointer.retained, [7, 10]);
  } finally {
    await nc.close();
  }
});

s.run();
