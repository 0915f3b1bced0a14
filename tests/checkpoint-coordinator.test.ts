// The checkpoint coordinator's own bookkeeping around the machine (checkpoint-machine.test.ts): what a
// trigger does while its checkpoint id is being reserved. The store's reservation is held by the test
// (only `reserveIds` is reached on this path); the subtask is a recording target.
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { CheckpointCoordinator, type CheckpointTarget } from "../actors/checkpoint/coordinator.ts";
import type { CheckpointStore } from "../runtime/checkpoint/store.ts";
import { ManualClock } from "../runtime/core/clock.ts";
import { eventually } from "./helpers/cli.ts";

const s = suite("checkpoint coordinator");

/** A coordinator over one source subtask that records the checkpoints it is asked for. */
function recordingCoordinator(store: CheckpointStore, reservedThrough: number): { coordinator: CheckpointCoordinator; triggered: number[] } {
  const triggered: number[] = [];
  const target: CheckpointTarget = {
    id: "src#0", isSource: true, isWaitingForFinalCheckpoint: false,
    triggerCheckpoint: (b) => { triggered.push(b.id); },
    notifyCheckpointComplete: () => {}, notifyCheckpointAborted: () => {},
  };
  const coordinator = new CheckpointCoordinator(() => [target], {
    job: "j", store, firstId: 1, reservedThrough, latestRevision: 0, maxParallelism: 128, parallelism: { src: 1 },
    timeoutMs: 60_000, retain: 3, log: () => {}, clock: new ManualClock(0),
  });
  return { coordinator, triggered };
}

s("a restart while a checkpoint's id is reserved drops that checkpoint: the new subtasks are never asked for it", async () => {
  const reservations: Array<(last: number) => void> = [];
  const store = {
    reserveIds: (lastUsed: number) => new Promise<{ first: number; last: number }>((resolve) => { reservations.push((last) => resolve({ first: lastUsed + 1, last })); }),
  } as unknown as CheckpointStore;
  const { coordinator, triggered } = recordingCoordinator(store, 0);
  try {
    const first = coordinator.trigger();
    assert.is(reservations.length, 1, "the id is reserved first");
    coordinator.abortPending("the job is restarting or ending");
    reservations[0]!(1);
    const outcome = await Promise.race([first.then(() => "completed", (e: Error) => e.message), new Promise((r) => setTimeout(() => r("still in flight after 1 s"), 1000))]);
    assert.is(outcome, "checkpoint 1 aborted while its id was reserved: the job is restarting or ending");
    await new Promise((r) => setTimeout(r, 10));
    assert.equal(triggered, [], "no subtask was asked for it");
    assert.not.ok(coordinator.busy, "nothing in flight: the next periodic checkpoint may start");
    assert.equal([coordinator.stats().aborted, coordinator.stats().inFlight], [1, undefined], "counted as aborted");
    // The next trigger takes the next id (an aborted one is not reused), reserving it first.
    void coordinator.trigger().catch(() => {});
    await eventually("the next reservation", 2000, () => reservations.length === 2 || undefined);
    reservations[1]!(2);
    await eventually("its barrier", 2000, () => triggered.length > 0 || undefined);
    assert.equal(triggered, [2]);
  } finally {
    await coordinator.stop();
  }
});

s("a stop during a commit waits for it and the deletes it queues (none is cut off by the connection closing)", async () => {
  let releaseCommit: (() => void) | undefined;
  const calls: string[] = [];
  const store = {
    reserveIds: async (lastUsed: number) => ({ first: lastUsed + 1, last: lastUsed + 100 }),
    commit: () => new Promise<number>((resolve) => { calls.push("commit started"); releaseCommit = () => { calls.push("committed"); resolve(1); }; }),
    deleteExpired: async () => { calls.push("old checkpoints deleted"); },
    sweep: async () => 0,
  } as unknown as CheckpointStore;
  const { coordinator, triggered } = recordingCoordinator(store, 100);
  const done = coordinator.trigger().then(() => "completed", (e: Error) => e.message);
  await new Promise((r) => setTimeout(r, 10));
  assert.equal(triggered, [1]);
  coordinator.ack({ vertexUid: "src", index: 0, parallelism: 1, operators: {}, ackedAtMs: 0, alignmentMs: 0, stateChanged: { entries: 0, bytes: 0 } }, 1);
  await new Promise((r) => setTimeout(r, 10));
  assert.equal(calls, ["commit started"]);
  const stopped = coordinator.stop().then(() => { calls.push("stopped"); });
  await new Promise((r) => setTimeout(r, 10));
  releaseCommit!();
  await stopped;
  assert.equal(calls, ["commit started", "committed", "old checkpoints deleted", "stopped"]);
  await done;
});

s("a restart drops a savepoint queued behind the checkpoint in flight: it never fires into the torn-down deployment", async () => {
  const store = { reserveIds: async (lastUsed: number) => ({ first: lastUsed + 1, last: lastUsed + 100 }) } as unknown as CheckpointStore;
  const { coordinator, triggered } = recordingCoordinator(store, 100);
  try {
    const inFlight = coordinator.trigger().then(() => "completed", (e: Error) => e.message);
    await new Promise((r) => setTimeout(r, 10));
    assert.equal(triggered, [1]);
    const queued = coordinator.trigger("savepoint", { pauseSources: true }).then(() => "completed", (e: Error) => e.message);
    coordinator.abortPending("the job is restarting");
    const queuedOutcome = await Promise.race([queued, new Promise<string>((r) => setTimeout(() => r("still waiting after 2 s"), 2000))]);
    assert.match(queuedOutcome, /the queued checkpoint was dropped: the job is restarting/);
    assert.match(await inFlight, /checkpoint 1 aborted/);
    await new Promise((r) => setTimeout(r, 10));
    assert.equal(triggered, [1], "the queued savepoint's barrier went nowhere");
    assert.not.ok(coordinator.busy);
  } finally {
    await coordinator.stop();
  }
});

s("a checkpoint asked for while one is in flight runs after it; a periodic one is refused instead", async () => {
  const store = {
    reserveIds: async (lastUsed: number) => ({ first: lastUsed + 1, last: lastUsed + 100 }),
    commit: async () => 1,
    deleteExpired: async () => {},
    sweep: async () => 0,
  } as unknown as CheckpointStore;
  const { coordinator, triggered } = recordingCoordinator(store, 100);
  const ack = (id: number) => coordinator.ack({ vertexUid: "src", index: 0, parallelism: 1, operators: {}, ackedAtMs: 0, alignmentMs: 0, stateChanged: { entries: 0, bytes: 0 } }, id);
  try {
    const periodic = coordinator.trigger("checkpoint", { ifIdle: true });
    await new Promise((r) => setTimeout(r, 10));
    assert.equal(triggered, [1]);
    const refused = await coordinator.trigger("checkpoint", { ifIdle: true }).then(() => "completed", (e: Error) => e.message);
    assert.is(refused, "a checkpoint is already in progress");
    const requested = coordinator.trigger();
    await new Promise((r) => setTimeout(r, 10));
    assert.equal(triggered, [1], "the requested one waits for the one in flight");
    ack(1);
    assert.is(await periodic, 1);
    await new Promise((r) => setTimeout(r, 10));
    assert.equal(triggered, [1, 2], "then runs");
    ack(2);
    assert.is(await requested, 2);
  } finally {
    await coordinator.stop();
  }
});

s("a checkpoint queued behind one whose id reservation failed goes on to reserve its own", async () => {
  const reservations: Array<{ resolve: (last: number) => void; reject: (e: Error) => void; lastUsed: number }> = [];
  const store = {
    reserveIds: (lastUsed: number) => new Promise<{ first: number; last: number }>((resolve, reject) => {
      reservations.push({ resolve: (last) => resolve({ first: lastUsed + 1, last }), reject, lastUsed });
    }),
  } as unknown as CheckpointStore;
  const { coordinator, triggered } = recordingCoordinator(store, 0);
  try {
    const first = coordinator.trigger().then(() => "completed", (e: Error) => e.message);
    const queued = coordinator.trigger();
    queued.catch(() => {});
    assert.is(reservations.length, 1, "the second waits for the first");
    reservations[0]!.reject(new Error("no responders"));
    assert.match(await first, /reserving ids in the checkpoint bucket failed: no responders/);
    assert.is(coordinator.stats().aborted, 1, "a checkpoint that could not reserve its id is an aborted one");
    await eventually("the queued one reserving ids itself rather than waiting for a later checkpoint", 2000, () => reservations.length === 2 || undefined);
    reservations[1]!.resolve(10);
    await eventually("its barrier", 2000, () => triggered.length > 0 || undefined);
    assert.equal(triggered, [1]);
  } finally {
    await coordinator.stop();
  }
});

s.run();
