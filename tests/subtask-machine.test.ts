// The subtask lifecycle machine (actors/subtask/machine.ts) as a pure machine: events in, states, context
// and requested effects out, on a simulated clock. Each test is one transition (or a few) from the list
// at the top of the machine file; no NATS, no operators.
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { createActor, type InspectionEvent } from "xstate";
import { SubtaskTag, describeSubtaskState, subtaskMachine, type SubtaskEvent, type SubtaskMachineInput } from "../actors/subtask/machine.ts";
import { ManualClock } from "../runtime/core/clock.ts";
import { SubtaskLifecycle } from "../actors/subtask/lifecycle.ts";

const s = suite("subtask machine");

const HOUR = 3_600_000;

/** A started actor whose effects are recorded as strings ("startSnapshot 3", "discardOperators", ...). */
function start(input: Partial<SubtaskMachineInput> = {}, clock = new ManualClock(0)) {
  const effects: string[] = [];
  const actor = createActor(
    subtaskMachine.provide({
      actions: {
        startSnapshot: (_, p) => { effects.push(`startSnapshot ${p.checkpointId}`); },
        wakeForStop: () => { effects.push("wakeForStop"); },
        discardOperators: () => { effects.push("discardOperators"); },
        releaseResources: () => { effects.push("releaseResources"); },
      },
    }),
    { input: { vertex: 1, index: 0, name: "count", sortsDuringBacklog: false, checkpointing: true, ...input }, clock },
  );
  actor.start();
  const send = (...events: SubtaskEvent[]) => { for (const e of events) actor.send(e); };
  const state = () => describeSubtaskState(actor.getSnapshot().value);
  return { actor, send, state, effects, clock };
}

/** A started actor already running (deployed and restored). */
function running(input: Partial<SubtaskMachineInput> = {}) {
  const t = start(input);
  t.send({ type: "DEPLOY" }, { type: "RESTORED" });
  return t;
}

/** A started actor whose input ended and whose outputs drained. */
function drained(input: Partial<SubtaskMachineInput> = {}) {
  const t = running(input);
  t.send({ type: "END_OF_INPUT" }, { type: "OUTPUTS_ENDED" }, { type: "DRAINED" });
  return t;
}

const barrier = (checkpointId: number, aligned: boolean): SubtaskEvent => ({ type: "BARRIER_RECEIVED", checkpointId, aligned });

s("created → restoring → running (streaming, no checkpoint)", () => {
  const t = start();
  assert.is(t.state(), "created");
  t.send({ type: "DEPLOY" });
  assert.is(t.state(), "restoring");
  t.send({ type: "RESTORED" });
  assert.is(t.state(), "running.streaming");
  assert.ok(t.actor.getSnapshot().matches({ running: { checkpoint: "idle" } }));
});

s("mode: streaming → backlog → streaming; once live, a backlog report is ignored", () => {
  const t = running();
  t.send({ type: "BACKLOG", isBacklog: true });
  assert.is(t.state(), "running.backlog");
  t.send({ type: "BACKLOG", isBacklog: false });
  assert.is(t.state(), "running.streaming");
  assert.is(t.actor.getSnapshot().context.wentLive, true);
  t.send({ type: "BACKLOG", isBacklog: true });
  assert.is(t.state(), "running.streaming", "no second backlog phase");
});

s("mode: a live report while streaming marks the subtask live without a transition", () => {
  const t = running();
  t.send({ type: "BACKLOG", isBacklog: false });
  assert.is(t.state(), "running.streaming");
  assert.is(t.actor.getSnapshot().context.wentLive, true);
  t.send({ type: "BACKLOG", isBacklog: true });
  assert.is(t.state(), "running.streaming");
});

s("mode: a keyed operator sorting its backlog goes backlog → sorting → streaming on SORT_DRAINED", () => {
  const t = running({ sortsDuringBacklog: true });
  t.send({ type: "BACKLOG", isBacklog: true }, { type: "BACKLOG", isBacklog: false });
  assert.is(t.state(), "running.sorting");
  t.send({ type: "BACKLOG", isBacklog: true });
  assert.is(t.state(), "running.sorting", "sorting waits for its drain");
  t.send({ type: "SORT_DRAINED" });
  assert.is(t.state(), "running.streaming");
});

s("checkpoint: a barrier aligned at once → snapshotting.capturing (startSnapshot) → persisting → idle on SNAPSHOT_DONE", () => {
  const t = running();
  t.send(barrier(3, true));
  assert.ok(t.actor.getSnapshot().matches({ running: { checkpoint: { snapshotting: "capturing" } } }));
  assert.equal(t.effects, ["startSnapshot 3"]);
  assert.is(t.state(), "running.streaming+snapshotting");
  t.send({ type: "SNAPSHOT_CAPTURED", checkpointId: 3 });
  assert.ok(t.actor.getSnapshot().matches({ running: { checkpoint: { snapshotting: "persisting" } } }));
  t.send({ type: "SNAPSHOT_DONE", checkpointId: 3 });
  assert.ok(t.actor.getSnapshot().matches({ running: { checkpoint: "idle" } }));
  const ctx = t.actor.getSnapshot().context;
  assert.is(ctx.lastCheckpoint, 3);
  assert.is(ctx.pendingCheckpoint, undefined);
});

s("checkpoint: idle → aligning → snapshotting on BARRIERS_ALIGNED", () => {
  const t = running();
  t.send(barrier(4, false));
  assert.is(t.state(), "running.streaming+aligning");
  assert.equal(t.effects, []);
  t.send({ type: "BARRIERS_ALIGNED", checkpointId: 4 });
  assert.ok(t.actor.getSnapshot().matches({ running: { checkpoint: { snapshotting: "capturing" } } }));
  assert.equal(t.effects, ["startSnapshot 4"]);
});

s("checkpoint: aligning → idle on CHECKPOINT_ABORTED of that checkpoint (another one's is ignored)", () => {
  const t = running();
  t.send(barrier(5, false), { type: "CHECKPOINT_ABORTED", checkpointId: 4 });
  assert.is(t.state(), "running.streaming+aligning");
  t.send({ type: "CHECKPOINT_ABORTED", checkpointId: 5 });
  assert.is(t.state(), "running.streaming");
  assert.is(t.actor.getSnapshot().context.pendingCheckpoint, undefined);
});

s("checkpoint: snapshotting → idle on CHECKPOINT_ABORTED of that checkpoint, while capturing or persisting", () => {
  const t = running();
  t.send(barrier(6, true), { type: "CHECKPOINT_ABORTED", checkpointId: 6 });
  assert.is(t.state(), "running.streaming");
  t.send(barrier(7, true), { type: "SNAPSHOT_CAPTURED", checkpointId: 7 }, { type: "CHECKPOINT_ABORTED", checkpointId: 7 });
  assert.is(t.state(), "running.streaming");
  assert.is(t.actor.getSnapshot().context.lastCheckpoint, undefined);
});

s("checkpoint: a checkpoint is snapshotted once, however asked", () => {
  const t = running();
  t.send(barrier(8, true), { type: "SNAPSHOT_CAPTURED", checkpointId: 8 }, { type: "SNAPSHOT_DONE", checkpointId: 8 });
  // The coordinator asked directly, then the barrier arrives through the channels (aligned at once).
  t.send(barrier(8, true));
  assert.is(t.state(), "running.streaming");
  // ... or after an alignment: aligning → idle without a snapshot.
  t.send(barrier(8, false));
  assert.is(t.state(), "running.streaming+aligning");
  t.send({ type: "BARRIERS_ALIGNED", checkpointId: 8 });
  assert.is(t.state(), "running.streaming");
  assert.equal(t.effects, ["startSnapshot 8"]);
});

s("checkpoint: a newer barrier while persisting starts the next checkpoint; the older one's ack still counts", () => {
  const t = running();
  t.send(barrier(9, true), { type: "SNAPSHOT_CAPTURED", checkpointId: 9 });
  t.send(barrier(9, true));
  assert.equal(t.effects, ["startSnapshot 9"], "not the same one again");
  t.send(barrier(10, true));
  assert.equal(t.effects, ["startSnapshot 9", "startSnapshot 10"]);
  assert.ok(t.actor.getSnapshot().matches({ running: { checkpoint: { snapshotting: "capturing" } } }));
  t.send({ type: "SNAPSHOT_CAPTURED", checkpointId: 10 }, barrier(11, false));
  assert.is(t.state(), "running.streaming+aligning");
  // SNAPSHOT_DONE of another checkpoint: remembered, no transition.
  t.send({ type: "SNAPSHOT_DONE", checkpointId: 9 });
  assert.is(t.state(), "running.streaming+aligning");
  assert.is(t.actor.getSnapshot().context.lastCheckpoint, 9);
  assert.is(t.actor.getSnapshot().context.pendingCheckpoint, 11);
});

s("finishing: endingInput → draining (outputs ended) → awaitingFinalCheckpoint → closing → finished", () => {
  const t = running();
  t.send({ type: "END_OF_INPUT" });
  assert.is(t.state(), "finishing.endingInput");
  assert.not.ok(t.actor.getSnapshot().hasTag(SubtaskTag.outputsEnded));
  t.send({ type: "OUTPUTS_ENDED" });
  assert.is(t.state(), "finishing.draining");
  assert.ok(t.actor.getSnapshot().hasTag(SubtaskTag.outputsEnded));
  assert.not.ok(t.actor.getSnapshot().hasTag(SubtaskTag.inputFinished));
  t.send({ type: "DRAINED" });
  assert.is(t.state(), "finishing.awaitingFinalCheckpoint");
  assert.ok(t.actor.getSnapshot().hasTag(SubtaskTag.inputFinished));
  t.send({ type: "RELEASE" });
  assert.is(t.state(), "finishing.closing");
  assert.equal(t.effects, []);
  t.send({ type: "CLOSED" });
  assert.is(t.state(), "finished");
  assert.is(t.actor.getSnapshot().status, "done");
  assert.equal(t.effects, ["releaseResources"]);
});

s("finishing: without checkpoints, draining → closing at once", () => {
  const t = running({ checkpointing: false });
  t.send({ type: "END_OF_INPUT" }, { type: "OUTPUTS_ENDED" }, { type: "DRAINED" });
  assert.is(t.state(), "finishing.closing");
});

s("finishing: the final checkpoint is snapshotted while awaiting it; an ack from before end of input still counts", () => {
  const t = running();
  t.send(barrier(2, true), { type: "SNAPSHOT_CAPTURED", checkpointId: 2 });
  t.send({ type: "END_OF_INPUT" }, { type: "OUTPUTS_ENDED" }, { type: "DRAINED" }, { type: "SNAPSHOT_DONE", checkpointId: 2 });
  assert.is(t.actor.getSnapshot().context.lastCheckpoint, 2);
  t.send(barrier(3, true));
  assert.is(t.state(), "finishing.awaitingFinalCheckpoint+snapshotting");
  assert.equal(t.effects, ["startSnapshot 2", "startSnapshot 3"]);
  t.send({ type: "SNAPSHOT_CAPTURED", checkpointId: 3 }, { type: "SNAPSHOT_DONE", checkpointId: 3 });
  assert.is(t.state(), "finishing.awaitingFinalCheckpoint");
  assert.is(t.actor.getSnapshot().context.lastCheckpoint, 3);
});

s("the wait for the final checkpoint has no timeout (simulated clock)", () => {
  const t = drained();
  t.clock.advance(24 * HOUR);
  assert.is(t.state(), "finishing.awaitingFinalCheckpoint");
});

s("FAIL from any non-final state → failed: error kept, operators discarded, resources released", () => {
  for (const prepare of [start, running, drained]) {
    const t = prepare();
    t.send({ type: "FAIL", error: "Error: boom" });
    assert.is(t.state(), "failed");
    assert.is(t.actor.getSnapshot().context.error, "Error: boom");
    assert.equal(t.effects.filter((e) => !e.startsWith("startSnapshot")), ["discardOperators", "releaseResources"]);
  }
});

s("CANCEL from any non-final state → cancelled, operators discarded", () => {
  for (const prepare of [start, running, drained]) {
    const t = prepare();
    t.send({ type: "CANCEL" });
    assert.is(t.state(), "cancelled");
    assert.equal(t.effects, ["discardOperators", "releaseResources"]);
  }
});

s("FAIL or CANCEL while closing: nothing discarded (the operators are being closed)", () => {
  const a = drained();
  a.send({ type: "RELEASE" }, { type: "FAIL", error: "Error: close failed" });
  assert.is(a.state(), "failed");
  assert.is(a.actor.getSnapshot().context.error, "Error: close failed");
  assert.equal(a.effects, ["releaseResources"]);
  const b = drained();
  b.send({ type: "RELEASE" }, { type: "CANCEL" });
  assert.is(b.state(), "cancelled");
  assert.equal(b.effects, ["releaseResources"]);
});

s("STOP: a graceful stop is remembered and wakes the run loop, without a transition", () => {
  const t = running();
  t.send({ type: "STOP" });
  assert.is(t.state(), "running.streaming");
  assert.is(t.actor.getSnapshot().context.stopRequested, true);
  assert.equal(t.effects, ["wakeForStop"]);
});

s("illegal events are ignored", () => {
  const t = running();
  const before = t.actor.getSnapshot();
  t.send({ type: "DEPLOY" }, { type: "RELEASE" }, { type: "CLOSED" }, { type: "DRAINED" }, { type: "SORT_DRAINED" }, { type: "BARRIERS_ALIGNED", checkpointId: 1 }, { type: "SNAPSHOT_CAPTURED", checkpointId: 1 });
  assert.is(t.state(), "running.streaming");
  assert.equal(t.actor.getSnapshot().context, before.context);
  assert.equal(t.effects, []);
  const created = start();
  created.send({ type: "RESTORED" }, { type: "END_OF_INPUT" });
  assert.is(created.state(), "created");
  const done = drained();
  done.send({ type: "RELEASE" }, { type: "CLOSED" }, { type: "FAIL", error: "late" }, { type: "CANCEL" });
  assert.is(done.state(), "finished");
  assert.is(done.actor.getSnapshot().context.error, undefined);
});

s("the runtime's actor is named by the subtask id in inspection events", () => {
  const ids = new Set<string>();
  const inspect = (e: InspectionEvent) => { const id = (e.actorRef as { id?: string }).id; if (id) ids.add(id); };
  const noop = () => {};
  const life = new SubtaskLifecycle("counter-uid#1", { vertex: 2, index: 1, name: "counter", sortsDuringBacklog: false, checkpointing: true },
    { startSnapshot: noop, wakeForStop: noop, discardOperators: noop, releaseResources: noop }, new ManualClock(0), inspect);
  life.start();
  life.send({ type: "DEPLOY" });
  assert.ok(ids.has("counter-uid#1"), [...ids].join(", "));
  assert.is(life.actor.system.get("counter-uid#1"), life.actor);
  life.send({ type: "CANCEL" });
  assert.ok(life.isTerminal);
});

s.run();
