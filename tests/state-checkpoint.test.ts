// Checkpoints of keyed state (the seams the checkpoint coordinator builds on): nothing uncommitted reaches KV, a restore
// gives exactly the state of the checkpoint restored, deltas replay at another parallelism.
import { suite } from "uvu";
import * as assert from "uvu/assert";
import * as t from "io-ts";
import { jetstreamManager } from "@nats-io/jetstream";
import type { NatsConnection } from "@nats-io/transport-node";
import { withServer } from "./helpers/nats-server.ts";
import { listState, mapState, valueState } from "../state/descriptors.ts";
import { StateRestoreError } from "../state/errors.ts";
import { KeyGroupRange, assignToKeyGroup } from "../state/key-groups.ts";
import { createKeyedStateBackend, destroyKeyedState } from "../state/factory.ts";
import type { KeyedStateBackend, StateSnapshot } from "../state/contracts.ts";
import type { JobNames } from "../runtime/core/names.ts";
import { collect, connectTo, freshJob, FULL_RANGE, handlesOf, MAX_PARALLELISM, rejection, stateBucket } from "./state-support.ts";

const s = suite("keyed state checkpoints");
const server = withServer(s);
let nc: NatsConnection;
s.before(async () => { nc = await connectTo(server.url); });
s.after(async () => { await nc?.close(); });

const count = valueState("count", t.number);
const seen = listState("seen", t.string);
const pages = mapState("pages", t.string, t.number);

function open(names: JobNames, range: KeyGroupRange = FULL_RANGE, config: Record<string, unknown> = {}, kind: "jetstream-kv" | "heap" = "jetstream-kv"): Promise<KeyedStateBackend> {
  return createKeyedStateBackend({
    kind, nc, names, keyGroupRange: range, maxParallelism: MAX_PARALLELISM, vertexUid: "v1",
    config: { durability: "checkpoint", flushIntervalMs: 10, materializeIntervalMs: 0, ...config },
  });
}

const handles = handlesOf;

async function kvCount(names: JobNames): Promise<number> {
  let n = 0;
  for await (const k of await (await stateBucket(nc, names)).keys()) if (!k.startsWith("/")) n++;
  return n;
}

/** Adds 1 to the count of every key, appends a tag to its list and bumps a map entry. */
async function step(backend: KeyedStateBackend, keys: readonly string[], tag: string): Promise<void> {
  const state = handles(backend);
  for (const k of keys) {
    await state(count, k).update(((await state(count, k).value()) ?? 0) + 1);
    await state(seen, k).add(tag);
    await state(pages, k).put(tag, k.length);
  }
}

async function expectState(backend: KeyedStateBackend, keys: readonly string[], tags: readonly string[]): Promise<void> {
  const state = handles(backend);
  for (const k of keys) {
    assert.is(await state(count, k).value(), tags.length === 0 ? undefined : tags.length, `count of ${k}`);
    assert.equal(await state(seen, k).get(), tags, `list of ${k}`);
    assert.equal(await collect(state(pages, k).keys()), [...tags].sort(), `map of ${k}`);
  }
}

const keys = Array.from({ length: 60 }, (_, i) => `k${i}`);

s("nothing reaches KV before its checkpoint completes; then KV holds exactly that checkpoint", async () => {
  const names = freshJob("ck");
  const b = await open(names, FULL_RANGE, { dirtyMaxEntries: 10 });
  await step(b, keys, "a");
  await new Promise((r) => setTimeout(r, 50)); // past the flush interval and far over the dirty budget
  await b.flush();
  assert.is(await kvCount(names), 0, "no flush to KV with checkpoints on");
  const s1 = await b.snapshot!(1);
  assert.is(s1.entries, keys.length * 4, "count, list, map entry and map index per key");
  assert.ok(s1.bytes > 0 && s1.changelog.messages!.length > 0);
  assert.is(await kvCount(names), 0, "a snapshot is durable in the changelog, not visible in KV");
  await step(b, keys, "b"); // after the barrier: must not be in checkpoint 1
  await b.notifyCheckpointComplete!(1);
  await b.close();
  const fresh = await open(names);
  await expectState(fresh, keys, ["a"]);
  await fresh.close();
});

s("crash after a snapshot that never completed: restore gives the last completed checkpoint", async () => {
  const names = freshJob("ck");
  const b = await open(names);
  await step(b, keys, "a");
  const s1 = await b.snapshot!(1);
  await b.notifyCheckpointComplete!(1);
  await step(b, keys, "b");
  const s2 = await b.snapshot!(2);
  assert.is(s2.checkpointId, 2);
  await step(b, keys, "c");
  // crash: b is abandoned; checkpoint 2 never completed, so the job restores checkpoint 1 (materialized)
  void s1;
  const r = await open(names);
  await r.restore!([]);
  await expectState(r, keys, ["a"]);
  await r.close();
  await b.close();
});

s("crash before materialization: the deltas listed by the checkpoint are replayed", async () => {
  const names = freshJob("ck");
  const b = await open(names);
  await step(b, keys, "a");
  const s1 = await b.snapshot!(1);
  await b.notifyCheckpointComplete!(1);
  await step(b, keys, "b");
  const s2 = await b.snapshot!(2);
  await step(b, keys, "c");
  const s3 = await b.snapshot!(3);
  // Checkpoints 2 and 3 committed, but the process died before materializing them.
  const r = await open(names);
  await r.restore!([s2, s3]);
  await expectState(r, keys, ["a", "b", "c"]);
  await r.close();
  // Restoring an older checkpoint than KV holds is refused, not silently wrong.
  const old = await open(names);
  const e = await rejection(old.restore!([s1]));
  assert.instance(e, StateRestoreError);
  assert.match(e.message, /cannot restore checkpoint 1: KV already holds checkpoint 3/);
  await old.close();
  await b.close();
});

s("materialization when due: committed checkpoints wait in the changelog, restores replay them, flush writes them", async () => {
  const names = freshJob("ck");
  const b = await open(names, FULL_RANGE, { materializeIntervalMs: 60_000 });
  await step(b, keys, "a");
  const s1 = await b.snapshot!(1);
  assert.is(await b.notifyCheckpointComplete!(1), 0, "not due yet: KV holds no checkpoint");
  await step(b, keys, "b");
  const s2 = await b.snapshot!(2);
  assert.is(await b.notifyCheckpointComplete!(2), 0);
  assert.is(await kvCount(names), 0, "committed changes not yet in KV");
  await step(b, keys, "c"); // never checkpointed
  // A crash now: checkpoint 2's metadata lists both deltas since the last materialization.
  const r = await open(names);
  await r.restore!([s1, s2]);
  await expectState(r, keys, ["a", "b"]);
  await r.close();

  // flush() (the end of a job) writes what is committed, never what is not.
  const names2 = freshJob("ck");
  const f = await open(names2, FULL_RANGE, { materializeIntervalMs: 60_000 });
  await step(f, keys, "a");
  await f.snapshot!(1);
  await f.notifyCheckpointComplete!(1);
  await step(f, keys, "b");
  await f.snapshot!(2); // not committed
  await f.flush();
  assert.is(await kvCount(names2), keys.length * 4);
  const g = await open(names2);
  await expectState(g, keys, ["a"]);
  await g.close();
  await f.close();

  // Half the dirty budget in committed entries makes it due at once.
  const names3 = freshJob("ck");
  const d = await open(names3, FULL_RANGE, { materializeIntervalMs: 60_000, dirtyMaxEntries: 100 });
  await step(d, keys, "a");
  await d.snapshot!(1);
  assert.is(await d.notifyCheckpointComplete!(1), 1, "due by the dirty budget: KV holds checkpoint 1");
  assert.is(await kvCount(names3), keys.length * 4);
  await d.close();
  await b.close();
});

s("materialized deltas are truncated from the changelog; restoring the checkpoint KV holds reads none", async () => {
  const names = freshJob("ck");
  const b = await open(names);
  await step(b, keys, "a");
  const s1 = await b.snapshot!(1);
  await b.notifyCheckpointComplete!(1);
  await step(b, keys, "b");
  const s2 = await b.snapshot!(2);
  await step(b, keys, "c");
  await b.snapshot!(3); // appended, never committed
  await b.notifyCheckpointComplete!(2);
  const jsm = await jetstreamManager(nc);
  // Checkpoints 1 and 2 are in KV: only the uncommitted delta 3 is left in the changelog.
  const remaining = (await jsm.streams.info(names.changelogStream)).state.messages;
  assert.ok(remaining > 0, "the uncommitted delta stays");
  const seqs = s1.changelog.messages!.concat(s2.changelog.messages!).map(([, seq]) => seq);
  for (const seq of seqs) assert.is(await jsm.direct.getMessage(names.changelogStream, { seq }).catch(() => null), null, `message ${seq} of a materialized delta is gone`);
  // A crash now: the latest checkpoint is 2, which KV holds; its (truncated) deltas are not needed.
  const r = await open(names);
  await r.restore!([s1, s2]);
  await expectState(r, keys, ["a", "b"]);
  await r.close();
  await b.close();
});

s("an aborted checkpoint's changes go into the next one; overlapping checkpoints", async () => {
  const names = freshJob("ck");
  const b = await open(names);
  await step(b, keys, "a");
  await b.snapshot!(1);
  b.notifyCheckpointAborted!(1);
  const s2 = await b.snapshot!(2);
  assert.is(s2.entries, keys.length * 4, "checkpoint 2 carries checkpoint 1's changes");
  await b.notifyCheckpointComplete!(2);
  await step(b, keys, "b");
  await b.snapshot!(3); // never completes
  await step(b, keys, "c");
  const s4 = await b.snapshot!(4);
  await b.notifyCheckpointComplete!(4);
  await b.close();
  const r = await open(names);
  await expectState(r, keys, ["a", "b", "c"]);
  assert.ok(s4.entries >= keys.length * 4);
  await r.close();
});

s("restore at another parallelism: each subtask replays its key groups only", async () => {
  const names = freshJob("ck");
  const two = [0, 1].map((i) => KeyGroupRange.forOperator(MAX_PARALLELISM, 2, i));
  const owner = (k: string, ranges: KeyGroupRange[]) => ranges.findIndex((r) => r.contains(assignToKeyGroup(k, MAX_PARALLELISM)));
  const olds = await Promise.all(two.map((r) => open(names, r)));
  for (const [i, b] of olds.entries()) await step(b, keys.filter((k) => owner(k, two) === i), "a");
  const snaps: StateSnapshot[] = [];
  for (const b of olds) { snaps.push(await b.snapshot!(1)); await b.notifyCheckpointComplete!(1); }
  for (const [i, b] of olds.entries()) await step(b, keys.filter((k) => owner(k, two) === i), "b");
  for (const b of olds) snaps.push(await b.snapshot!(2)); // savepoint 2, not materialized
  for (const b of olds) await b.close();
  const three = [0, 1, 2].map((i) => KeyGroupRange.forOperator(MAX_PARALLELISM, 3, i));
  for (const [i, range] of three.entries()) {
    const b = await open(names, range);
    await b.restore!(snaps.filter((x) => x.checkpointId === 2));
    await expectState(b, keys.filter((k) => owner(k, three) === i), ["a", "b"]);
    await b.close();
  }
});

s("heap backend: full snapshots, restored at another parallelism", async () => {
  const names = freshJob("ckh");
  const b = await open(names, FULL_RANGE, {}, "heap");
  await step(b, keys, "a");
  const s1 = await b.snapshot!(1);
  assert.is(s1.kind, "full");
  await step(b, keys, "b");
  const s2 = await b.snapshot!(2);
  await step(b, keys, "c");
  await b.close();
  for (const i of [0, 1]) {
    const range = KeyGroupRange.forOperator(MAX_PARALLELISM, 2, i);
    const r = await open(names, range, {}, "heap");
    await r.restore!([s1, s2]);
    await expectState(r, keys.filter((k) => range.contains(assignToKeyGroup(k, MAX_PARALLELISM))), ["a", "b"]);
    await r.close();
  }
});

s("heap backend: a committed snapshot deletes the older ones it took from the changelog", async () => {
  const names = freshJob("ckh");
  const b = await open(names, FULL_RANGE, {}, "heap");
  await step(b, keys, "a");
  const s1 = await b.snapshot!(1);
  await b.notifyCheckpointComplete!(1);
  await step(b, keys, "b");
  const s2 = await b.snapshot!(2);
  await b.notifyCheckpointComplete!(2);
  const jsm = await jetstreamManager(nc);
  for (const [, seq] of s1.changelog.messages!) assert.is(await jsm.direct.getMessage(names.changelogStream, { seq }).catch(() => null), null, `message ${seq} of snapshot 1 is gone`);
  assert.is((await jsm.streams.info(names.changelogStream)).state.messages, s2.changelog.messages!.length, "only the newest snapshot is left");
  await b.close();
  const r = await open(names, FULL_RANGE, {}, "heap");
  await r.restore!([s2]);
  await expectState(r, keys, ["a", "b"]);
  await r.close();
});

s("heap backend: a snapshot appends only the key groups that changed and names the others' earlier messages", async () => {
  const names = freshJob("ckh");
  const b = await open(names, FULL_RANGE, {}, "heap");
  const jsm = await jetstreamManager(nc);
  const stored = async () => (await jsm.streams.info(names.changelogStream)).state.messages;
  await step(b, keys, "a");
  const s1 = await b.snapshot!(1);
  await b.notifyCheckpointComplete!(1);
  const changedGroup = assignToKeyGroup("k0", MAX_PARALLELISM);
  await step(b, ["k0"], "b");
  const s2 = await b.snapshot!(2);
  const ofChanged = s1.changelog.messages!.filter(([kg]) => kg === changedGroup);
  assert.is(await stored(), s1.changelog.messages!.length + ofChanged.length, "one key group appended again");
  assert.equal(s2.changelog.messages!.filter(([kg]) => kg !== changedGroup), s1.changelog.messages!.filter(([kg]) => kg !== changedGroup).map(([kg, seq]) => [kg, seq, 1]));
  await b.notifyCheckpointComplete!(2);
  for (const [, seq] of ofChanged) assert.is(await jsm.direct.getMessage(names.changelogStream, { seq }).catch(() => null), null, `the changed group's old message ${seq} is gone`);
  assert.is(await stored(), s1.changelog.messages!.length, "the unchanged groups' messages are kept");
  // Idle: nothing appended, nothing deleted.
  const s3 = await b.snapshot!(3);
  await b.notifyCheckpointComplete!(3);
  assert.is(await stored(), s1.changelog.messages!.length);
  await b.close();
  for (const parallelism of [1, 2]) {
    for (let i = 0; i < parallelism; i++) {
      const range = KeyGroupRange.forOperator(MAX_PARALLELISM, parallelism, i);
      const r = await open(names, range, {}, "heap");
      await r.restore!([s3]);
      const mine = (k: string) => range.contains(assignToKeyGroup(k, MAX_PARALLELISM));
      await expectState(r, ["k0"].filter(mine), ["a", "b"]);
      await expectState(r, keys.filter((k) => k !== "k0" && mine(k)), ["a"]);
      await r.close();
    }
  }
});

s("heap backend: messages an aborted snapshot appended stay while a later one names them", async () => {
  const names = freshJob("ckh");
  const b = await open(names, FULL_RANGE, {}, "heap");
  const jsm = await jetstreamManager(nc);
  const present = async (seq: number) => (await jsm.direct.getMessage(names.changelogStream, { seq }).catch(() => null)) !== null;
  await step(b, keys, "a");
  await b.snapshot!(1);
  await b.notifyCheckpointComplete!(1);
  await step(b, ["k0"], "b");
  const s2 = await b.snapshot!(2);
  b.notifyCheckpointAborted!(2);
  const group = assignToKeyGroup("k0", MAX_PARALLELISM);
  const written2 = s2.changelog.messages!.filter(([kg]) => kg === group);
  const s3 = await b.snapshot!(3);
  assert.equal(s3.changelog.messages!.filter(([kg]) => kg === group), written2.map(([kg, seq]) => [kg, seq, 2]), "checkpoint 3 names what aborted checkpoint 2 appended");
  await b.notifyCheckpointComplete!(3);
  for (const [, seq] of written2) assert.ok(await present(seq), `message ${seq} of checkpoint 2 is kept`);
  await b.close();
  const r = await open(names, FULL_RANGE, {}, "heap");
  await r.restore!([s3]);
  await expectState(r, ["k0"], ["a", "b"]);
  await expectState(r, keys.slice(1), ["a"]);
  await r.close();
});

s("dispose drops uncommitted changes without writing them", async () => {
  const names = freshJob("ck");
  const b = await open(names);
  await step(b, keys, "a");
  const s1 = await b.snapshot!(1);
  await b.notifyCheckpointComplete!(1);
  await step(b, keys, "b");
  b.dispose!();
  const e = await rejection(handles(b)(count, "k1").value());
  assert.match(e.message, /closed/);
  const r = await open(names);
  await r.restore!([s1]);
  await expectState(r, keys, ["a"]);
  await r.close();
  const flushing = await createKeyedStateBackend({ kind: "jetstream-kv", nc, names: freshJob("ck"), keyGroupRange: FULL_RANGE, maxParallelism: MAX_PARALLELISM, config: { flushIntervalMs: 0 } });
  await handles(flushing)(count, "x").update(1);
  flushing.dispose!();
  assert.is(flushing.metrics().remoteWrites, 0);
});

s("durability flush refuses checkpoint calls; destroyKeyedState removes everything", async () => {
  const names = freshJob("ck");
  const b = await createKeyedStateBackend({ kind: "jetstream-kv", nc, names, keyGroupRange: FULL_RANGE, maxParallelism: MAX_PARALLELISM });
  assert.throws(() => b.snapshot!(1), /durability "flush"/);
  await handles(b)(count, "x").update(1);
  await b.close();
  const c = await open(names);
  await c.snapshot!(1);
  await c.close();
  await destroyKeyedState(nc, names);
  const d = await open(names);
  assert.is(await handles(d)(count, "x").value(), undefined);
  await d.close();
});

s("Infinity, -Infinity and NaN in state come back from a checkpoint as themselves (JSON alone would read null)", async () => {
  const acc = valueState("acc", t.type({ max: t.number, min: t.number, none: t.number }));
  const values = listState("values", t.number);
  for (const kind of ["jetstream-kv", "heap"] as const) {
    const names = freshJob(`nonfinite${kind.length}`);
    const b = await open(names, FULL_RANGE, {}, kind);
    const r = await open(names, FULL_RANGE, {}, kind);
    try {
      const state = handles(b);
      await state(acc, "k").update({ max: Number.NEGATIVE_INFINITY, min: Number.POSITIVE_INFINITY, none: Number.NaN });
      await state(count, "k").update(Number.NEGATIVE_INFINITY);
      await state(values, "k").update([1, Number.POSITIVE_INFINITY]);
      await state(values, "k").add(Number.NaN);
      const s1 = await b.snapshot!(1);
      await b.notifyCheckpointComplete!(1);
      await r.restore!([s1]);
      const restored = handles(r);
      assert.equal(await restored(acc, "k").value(), { max: Number.NEGATIVE_INFINITY, min: Number.POSITIVE_INFINITY, none: Number.NaN }, kind);
      assert.is(await restored(count, "k").value(), Number.NEGATIVE_INFINITY, kind);
      assert.equal(await restored(values, "k").get(), [1, Number.POSITIVE_INFINITY, Number.NaN], kind);
    } finally {
      await r.close();
      await b.close();
    }
  }
});

s.run();
