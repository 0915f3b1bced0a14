// State removed from the jetstream-kv backend leaves nothing in the bucket: no delete or purge marker per
// key, so state living under ever-new keys (an event-time window's accumulator) does not grow the bucket.
import { suite } from "uvu";
import * as assert from "uvu/assert";
import * as t from "io-ts";
import { jetstreamManager } from "@nats-io/jetstream";
import type { NatsConnection } from "@nats-io/transport-node";
import { withServer } from "./helpers/nats-server.ts";
import { valueState } from "../state/descriptors.ts";
import { createStateHandle } from "../state/handles/create.ts";
import { DirectStateRequestHandler } from "../state/handlers/direct.ts";
import type { JobNames } from "../runtime/core/names.ts";
import { connectTo, freshJob, openBackend, scopeOf } from "./state-support.ts";
import { ensureStateBucket } from "../state/backends/jetstream-kv/open.ts";
import { KvPipe } from "../state/backends/jetstream-kv/pipe.ts";
import { RemoteValues, type StoredEntry } from "../state/backends/jetstream-kv/remote-values.ts";
import { StateWriteConflictError } from "../state/errors.ts";

const s = suite("jetstream-kv state backend: removed state leaves no markers");
const server = withServer(s);
let nc: NatsConnection;
s.before(async () => { nc = await connectTo(server.url); });
s.after(async () => { await nc?.close(); });

const acc = (window: number) => valueState(`window-acc=${window}`, t.number);
const blob = valueState("blob", t.string);

async function bucketMessages(names: JobNames): Promise<number> {
  return (await (await jetstreamManager(nc)).streams.info(`KV_${names.stateBucket}`)).state.messages;
}

s("cleared window state: the bucket holds only live state, however many windows passed", async () => {
  const names = freshJob();
  const backend = await openBackend("jetstream-kv", nc, names, { flushIntervalMs: 0 });
  const handler = new DirectStateRequestHandler(backend);
  try {
    for (let w = 0; w < 10; w++) {
      for (let k = 0; k < 50; k++) await createStateHandle(acc(w), scopeOf(`k${k}`), handler).update(w + k);
      await backend.flush();
      assert.is(await bucketMessages(names), 50, `window ${w}: its 50 accumulators are in KV`);
      for (let k = 0; k < 50; k++) await createStateHandle(acc(w), scopeOf(`k${k}`), handler).clear();
      await backend.flush();
      assert.is(await bucketMessages(names), 0, `window ${w} fired and cleared: nothing left in the bucket`);
      assert.is(await createStateHandle(acc(w), scopeOf("k7"), handler).value(), undefined);
    }
  } finally {
    await backend.close();
  }
  const reader = await openBackend("jetstream-kv", nc, names);
  try {
    assert.is(await createStateHandle(acc(3), scopeOf("k7"), new DirectStateRequestHandler(reader)).value(), undefined, "a new backend reads cleared state as absent");
  } finally {
    await reader.close();
  }
});

s("a chunked value replaced by a small one, then cleared: no chunk or marker stays behind", async () => {
  const names = freshJob();
  const maxPayload = nc.info!.max_payload;
  const backend = await openBackend("jetstream-kv", nc, names, { flushIntervalMs: 0, maxValueBytes: 4 * maxPayload });
  const state = createStateHandle(blob, scopeOf("k"), new DirectStateRequestHandler(backend));
  try {
    await state.update("x".repeat(Math.floor(maxPayload * 2.5)));
    await backend.flush();
    assert.is(await bucketMessages(names), 4, "head + 3 chunks");
    await state.update("small now");
    await backend.flush();
    assert.is(await bucketMessages(names), 1, "the old chunks are gone, not left as markers");
    await state.clear();
    await backend.flush();
    assert.is(await bucketMessages(names), 0);
  } finally {
    await backend.close();
  }
});

s("an entry erased by the sequence it was stored under; already deleted by an earlier attempt, the erase is done; rewritten meanwhile by another writer, it is erased (in one process) or refused (through a worker's fence)", async () => {
  const names = freshJob();
  await ensureStateBucket(nc, names.stateBucket);
  const pipe = new KvPipe(nc, names.stateBucket, { getWindow: 16, writeWindow: 16, timeoutMs: 10_000 });
  const fencedPipe = new KvPipe(nc, names.stateBucket, { getWindow: 16, writeWindow: 16, timeoutMs: 10_000, mayWrite: () => true });
  const remote = new RemoteValues(pipe, nc.info!.max_payload);
  const fenced = new RemoteValues(fencedPipe, nc.info!.max_payload);
  const data = new TextEncoder().encode("42");
  const entry = (key: string): StoredEntry => ({ key, chunks: undefined, kvHolds: undefined, kvSeq: undefined });
  try {
    const mine = entry("a");
    await remote.store(mine, data);
    assert.ok(mine.kvSeq !== undefined && mine.kvSeq > 0, "the stored message's sequence is kept");
    await remote.erase(mine);
    assert.is(await pipe.get("a"), undefined);
    assert.is(await bucketMessages(names), 0, "nothing left behind");
    assert.is(await pipe.deleteSeq(1), false, "a sequence no longer in the stream is reported, not an error");

    for (const values of [remote, fenced]) {
      const repeated = entry("c");
      await values.store(repeated, data);
      assert.is(await pipe.deleteSeq(repeated.kvSeq!), true); // an earlier attempt of the erase that landed
      await values.erase(repeated);
      assert.is(repeated.kvHolds, false);
    }

    const stale = entry("b");
    await remote.store(stale, data);
    await pipe.put("b", new TextEncoder().encode("43")); // replaces the message `stale` knows
    await remote.erase(stale);
    assert.is(await pipe.get("b"), undefined, "in one process the newer value is gone too");
    assert.is(await bucketMessages(names), 0);

    // Through a worker's fence, another writer of the key owns it now (state/backends/jetstream-kv/remote-values.ts).
    const left = entry("d");
    await fenced.store(left, data);
    await pipe.put("d", new TextEncoder().encode("43"));
    const refused = await fenced.erase(left).then(() => undefined, (e: unknown) => e);
    assert.instance(refused, StateWriteConflictError);
    assert.match((refused as Error).message, /KV key d of bucket .* was written by another writer/);
    assert.is(new TextDecoder().decode(await pipe.get("d")), "43", "the other writer's value stays");
  } finally {
    pipe.close();
    fencedPipe.close();
  }
});

s.run();
