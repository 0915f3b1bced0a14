// Conditional KV writes of a worker's backend (its writes go through a state write fence) on a bucket of
// one replica (state/backends/jetstream-kv/remote-values.ts): a write of a key expects the key's message the
// backend last read or wrote, so a writer left behind (a worker frozen with writes in flight, then thawed
// after another took its key groups over) cannot set a key back: its write is refused, visibly, and the
// newer value stays. End to end under a freeze: `npm run bench fence`.
import { suite } from "uvu";
import * as assert from "uvu/assert";
import * as t from "io-ts";
import type { NatsConnection } from "@nats-io/transport-node";
import { withServer } from "./helpers/nats-server.ts";
import { valueState } from "../state/descriptors.ts";
import { connectTo, freshJob, FULL_RANGE, handlesOf, MAX_PARALLELISM } from "./state-support.ts";
import { createKeyedStateBackend } from "../state/factory.ts";
import type { JobNames } from "../runtime/core/names.ts";
import { ensureStateBucket } from "../state/backends/jetstream-kv/open.ts";
import { KvPipe } from "../state/backends/jetstream-kv/pipe.ts";
import { StateWriteConflictError } from "../state/errors.ts";
import type { KeyedStateBackend } from "../state/contracts.ts";

const s = suite("jetstream-kv state backend: conditional writes");
const server = withServer(s);
let nc: NatsConnection;
s.before(async () => { nc = await connectTo(server.url); });
s.after(async () => { await nc?.close(); });

const bytes = (text: string) => new TextEncoder().encode(text);
const text = (b: Uint8Array | undefined) => (b === undefined ? undefined : new TextDecoder().decode(b));
const rejection = (p: Promise<unknown>) => p.then(() => undefined, (e: unknown) => e);
const count = valueState("count", t.number);

/** A worker's backend: its writes go through a fence (open here). */
const workerBackend = (names: JobNames) => createKeyedStateBackend({ kind: "jetstream-kv", nc, names, keyGroupRange: FULL_RANGE, maxParallelism: MAX_PARALLELISM, config: {}, mayWrite: () => true });

s("a put expecting the key's last message: stored while it is, refused once another write replaced it (unless it holds the same bytes)", async () => {
  const names = freshJob("cond");
  await ensureStateBucket(nc, names.stateBucket);
  const pipe = new KvPipe(nc, names.stateBucket, { getWindow: 8, writeWindow: 8, timeoutMs: 10_000 });
  try {
    assert.equal((await pipe.read("k")).seq, 0, "an absent key has no message");
    const first = await pipe.put("k", bytes("1"), 0);
    assert.equal((await pipe.read("k")).seq, first, "a read gives the message's sequence");
    const second = await pipe.put("k", bytes("2"), first);
    assert.ok(second > first);

    const refused = await rejection(pipe.put("k", bytes("3"), first));
    assert.instance(refused, StateWriteConflictError);
    assert.match((refused as Error).message, /KV key k of bucket .* was written by another writer since this subtask last read or wrote it \(it expected the key's message #\d+\)/);
    assert.is(text(await pipe.get("k")), "2", "the refused write changed nothing");
    assert.instance(await rejection(pipe.put("k", bytes("3"), 0)), StateWriteConflictError, "expecting no message while there is one");

    // A write sent again whose first attempt landed: refused by the server, but the key holds its bytes.
    assert.is(await pipe.put("k", bytes("2"), first), second);
  } finally {
    pipe.close();
  }
});

s("a backend left behind cannot set a key back: its flush is refused and the new owner's value stays", async () => {
  const names = freshJob("cond");
  let left: KeyedStateBackend | undefined;
  let owner: KeyedStateBackend | undefined;
  try {
    left = await workerBackend(names);
    const leftCount = handlesOf(left)(count, "user-1");
    await leftCount.update(((await leftCount.value()) ?? 0) + 1);
    await left.flush();

    // Its key group taken over: the new owner reads the key and counts on.
    owner = await workerBackend(names);
    const ownerCount = handlesOf(owner)(count, "user-1");
    assert.is(await ownerCount.value(), 1);
    await ownerCount.update(5);
    await owner.flush();

    // The backend left behind writes again (its cached entry knows the message it wrote).
    await leftCount.update(2);
    const refused = await rejection(left.flush());
    assert.ok(refused instanceof Error, "the flush fails");
    const conflict = refused instanceof StateWriteConflictError ? refused : (refused as Error).cause;
    assert.instance(conflict, StateWriteConflictError, `a write conflict, not: ${String(refused)}`);

    const fresh = await workerBackend(names);
    try {
      assert.is(await handlesOf(fresh)(count, "user-1").value(), 5, "the new owner's value stays");
    } finally {
      await fresh.close();
    }
    // The new owner goes on: its own writes still expect what it wrote.
    await ownerCount.update(6);
    await owner.flush();
  } finally {
    left?.dispose?.();
    await owner?.close();
  }
});

s.run();
