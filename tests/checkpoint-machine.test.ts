// The checkpoint machine and the periodic scheduler as specifications: legal transitions as pure logic on a
// simulated clock (timeouts, aborts, the commit as an invoked promise actor that succeeds or fails), in
// milliseconds; the effects are recorded, not performed.
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { createActor, fromPromise, waitFor, type Actor } from "xstate";
import { checkpointMachine } from "../actors/checkpoint/machine.ts";
import { CheckpointScheduler } from "../actors/checkpoint/scheduler.ts";
import { ManualClock } from "../runtime/core/clock.ts";

const s = suite("checkpoint machine");

interface Harness {
  readonly actor: Actor<typeof checkpointMachine>;
  readonly clock: ManualClock;
  readonly effects: string[];
  /** Settles the commit the machine invoked last. */
  commit(outcome: "ok" | Error): void;
  state(): string;
}

function start(timeoutMs = 1_000, tolerableTimeouts = Number.POSITIVE_INFINITY): Harness {
  const clock = new ManualClock(0);
  const effects: string[] = [];
  let settle: ((outcome: "ok" | Error) => void) | undefined;
  const machine = checkpointMachine.provide({
    actions: {
      injectBarriers: (_, p) => { effects.push(`inject ${p.checkpointId} ${p.kind}`); },
      notifyComplete: (_, p) => { effects.push(`complete ${p.checkpointId}`); },
      notifyAborted: (_, p) => { effects.push(`abort ${p.checkpointId}: ${p.reason}`); },
      reportTimeouts: (_, p) => { effects.push(`stalled: ${p.timeouts} timeouts`); },
    },
    actors: {
      commit: fromPromise<void, { checkpointId: number }>(({ input }) => new Promise<void>((resolve, reject) => {
        effects.push(`commit ${input.checkpointId}`);
        settle = (o) => (o === "ok" ? resolve() : reject(o));
      })),
    },
  });
  const actor = createActor(machine, { clock, input: { firstId: 7, timeoutMs, tolerableTimeouts } });
  actor.start();
  return {
    actor, clock, effects,
    commit: (o) => { if (!settle) throw new Error("no commit invoked"); settle(o); settle = undefined; },
    state: () => String(actor.getSnapshot().value),
  };
}

const idle = (h: Harness) => waitFor(h.actor, (snap) => snap.value === "idle", { timeout: 5_000 });

s("trigger, every acknowledgement, commit: completed, with the next id ready", async () => {
  const h = start();
  h.actor.send({ type: "TRIGGER", kind: "checkpoint", expectedAcks: 2 });
  assert.is(h.state(), "pending");
  h.actor.send({ type: "ACK", checkpointId: 7 });
  h.actor.send({ type: "ACK", checkpointId: 99 });
  assert.is(h.state(), "pending", "an acknowledgement of another checkpoint does not count");
  h.actor.send({ type: "ACK", checkpointId: 7 });
  assert.is(h.state(), "committing");
  h.commit("ok");
  await idle(h);
  const c = h.actor.getSnapshot().context;
  assert.equal([c.completed, c.aborted, c.lastCompletedId, c.pendingId, c.nextId], [1, 0, 7, undefined, 8]);
  assert.equal(h.effects, ["inject 7 checkpoint", "commit 7", "complete 7"]);
});

s("a failed commit aborts the checkpoint with the store's reason", async () => {
  const h = start();
  h.actor.send({ type: "TRIGGER", kind: "savepoint", expectedAcks: 1 });
  h.actor.send({ type: "ACK", checkpointId: 7 });
  h.commit(new Error("wrong last sequence"));
  await idle(h);
  const c = h.actor.getSnapshot().context;
  assert.equal([c.completed, c.aborted, c.lastFailure], [0, 1, "wrong last sequence"]);
  assert.equal(h.effects, ["inject 7 savepoint", "commit 7", "abort 7: wrong last sequence"]);
});

s("a checkpoint not acknowledged within its timeout is aborted, on the clock", () => {
  const h = start(1_000);
  h.actor.send({ type: "TRIGGER", kind: "checkpoint", expectedAcks: 2 });
  h.actor.send({ type: "ACK", checkpointId: 7 });
  h.clock.advance(999);
  assert.is(h.state(), "pending");
  h.clock.advance(1);
  assert.is(h.state(), "idle");
  assert.is(h.actor.getSnapshot().context.lastFailure, "checkpoint 7 timed out after 1000 ms");
  assert.equal(h.effects, ["inject 7 checkpoint", "abort 7: timeout"]);
  // The next one has its own timeout, from its own trigger.
  h.clock.advance(5_000);
  h.actor.send({ type: "TRIGGER", kind: "checkpoint", expectedAcks: 1 });
  h.clock.advance(999);
  assert.is(h.state(), "pending");
});

s("timeouts in a row beyond the tolerated number are reported; a completed checkpoint or a decline in between does not count as one", async () => {
  const h = start(1_000, 1);
  const timeOut = () => { h.actor.send({ type: "TRIGGER", kind: "checkpoint", expectedAcks: 1 }); h.clock.advance(1_000); };
  timeOut();
  assert.ok(!h.effects.some((e) => e.startsWith("stalled")), "the first timeout is tolerated");
  h.actor.send({ type: "TRIGGER", kind: "checkpoint", expectedAcks: 1 });
  h.actor.send({ type: "ACK", checkpointId: 8 });
  h.commit("ok");
  await idle(h);
  timeOut();
  h.actor.send({ type: "TRIGGER", kind: "checkpoint", expectedAcks: 1 });
  h.actor.send({ type: "DECLINE", checkpointId: 10, reason: "snapshot failed" });
  assert.ok(!h.effects.some((e) => e.startsWith("stalled")), "a completion reset the count, a decline is not a timeout");
  timeOut();
  assert.equal(h.effects.filter((e) => e.startsWith("stalled")), ["stalled: 2 timeouts"]);
  assert.is(h.state(), "idle", "the machine goes on (the job decides to restart)");
});

s("a savepoint that times out fails only itself: it is not counted as a stalled checkpoint", () => {
  const h = start(1_000, 0);
  h.actor.send({ type: "TRIGGER", kind: "savepoint", expectedAcks: 1 });
  h.clock.advance(1_000);
  assert.equal(h.effects, ["inject 7 savepoint", "abort 7: timeout"]);
  h.actor.send({ type: "TRIGGER", kind: "checkpoint", expectedAcks: 1 });
  h.clock.advance(1_000);
  assert.equal(h.effects.slice(2), ["inject 8 checkpoint", "abort 8: timeout", "stalled: 1 timeouts"]);
});

s("the timeout does not cut a commit short; a decline aborts; stop ends", async () => {
  const h = start(1_000);
  h.actor.send({ type: "TRIGGER", kind: "checkpoint", expectedAcks: 1 });
  h.actor.send({ type: "ACK", checkpointId: 7 });
  h.clock.advance(10_000);
  assert.is(h.state(), "committing");
  h.commit("ok");
  await idle(h);
  h.actor.send({ type: "TRIGGER", kind: "checkpoint", expectedAcks: 3 });
  h.actor.send({ type: "DECLINE", checkpointId: 7, reason: "old" });
  assert.is(h.state(), "pending", "a decline of another checkpoint is ignored");
  h.actor.send({ type: "DECLINE", checkpointId: 8, reason: "state backend failed" });
  assert.is(h.state(), "idle");
  assert.is(h.actor.getSnapshot().context.lastFailure, "state backend failed");
  h.actor.send({ type: "TRIGGER", kind: "checkpoint", expectedAcks: 1 });
  h.actor.send({ type: "STOP" });
  assert.is(h.state(), "stopped");
});

s("a second trigger while one is in flight is ignored", () => {
  const h = start();
  h.actor.send({ type: "TRIGGER", kind: "checkpoint", expectedAcks: 1 });
  h.actor.send({ type: "TRIGGER", kind: "checkpoint", expectedAcks: 1 });
  assert.is(h.actor.getSnapshot().context.nextId, 8);
  assert.equal(h.effects, ["inject 7 checkpoint"]);
});

const sched = suite("checkpoint scheduler");

function schedule(o: { backlog?: () => boolean; may?: () => boolean; duringBacklogMs?: number; idle?: () => boolean; whileIdleMs?: number } = {}) {
  const clock = new ManualClock(0);
  const at: number[] = [];
  const skipped: number[] = [];
  const scheduler = new CheckpointScheduler(clock, {
    intervalMs: 1_000,
    duringBacklogMs: o.duringBacklogMs ?? 0,
    inBacklog: o.backlog ?? (() => false),
    mayTrigger: o.may ?? (() => true),
    trigger: () => at.push(clock.now()),
    isIdle: o.idle ?? (() => false),
    whileIdleMs: o.whileIdleMs ?? 10_000,
    skipped: () => skipped.push(clock.now()),
  });
  return { clock, at, skipped, scheduler };
}

sched("every interval, on the clock, until stopped", () => {
  const { clock, at, scheduler } = schedule();
  clock.advance(999);
  assert.equal(at, []);
  clock.advance(2_001);
  assert.equal(at, [1_000, 2_000, 3_000]);
  scheduler.stop();
  clock.advance(10_000);
  assert.equal(at, [1_000, 2_000, 3_000]);
});

sched("none during backlog with an interval of 0; its own interval otherwise", () => {
  let backlog = true;
  const off = schedule({ backlog: () => backlog });
  off.clock.advance(5_000);
  assert.equal(off.at, [], "no checkpoints while a source reads a backlog");
  backlog = false;
  off.clock.advance(250);
  assert.equal(off.at, [5_250], "due at once when the backlog ends");
  off.scheduler.stop();

  const slow = schedule({ backlog: () => true, duringBacklogMs: 3_000 });
  slow.clock.advance(7_000);
  assert.equal(slow.at, [3_000, 6_000]);
  slow.scheduler.stop();
});

sched("a checkpoint due while another runs starts soon after, not a whole interval later", () => {
  let may = false;
  const { clock, at, scheduler } = schedule({ may: () => may });
  clock.advance(1_500);
  assert.equal(at, []);
  may = true;
  clock.advance(250);
  assert.equal(at, [1_750]);
  scheduler.stop();
});

sched("at rest: due checkpoints are skipped, one every whileIdleMs; the next after activity within an interval", () => {
  let idle = true;
  const { clock, at, skipped, scheduler } = schedule({ idle: () => idle, whileIdleMs: 10_000 });
  clock.advance(23_100);
  assert.equal(at, [10_000, 20_000], "one checkpoint every 10 s while at rest");
  assert.is(skipped.length, 21, "the other due ones were skipped, and counted");
  idle = false;
  clock.advance(900);
  assert.equal(at, [10_000, 20_000, 24_000], "activity: the next due checkpoint is taken");
  clock.advance(2_000);
  assert.equal(at.slice(3), [25_000, 26_000], "and every interval after it");
  scheduler.stop();

  const never = schedule({ idle: () => true, whileIdleMs: 0 });
  never.clock.advance(60_000);
  assert.equal(never.at, [], "whileIdleMs 0: none while at rest");
  never.scheduler.stop();
});

s.run();
sched.run();
