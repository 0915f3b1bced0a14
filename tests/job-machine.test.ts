// The job machine as a specification: its legal transitions as pure logic on a simulated clock. Restart
// delays come from the restart strategy's decision and run on the actor's clock, so the tests move time
// by hand, in milliseconds; the effects (deploy, cancel, prepare a restart) are recorded, not performed.
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { createActor, fromPromise, waitFor, type Actor } from "xstate";
import { OUTAGE_RESTART_DELAY_MS, jobMachine, jobStateOf, whenRunning, type JobMachineInput } from "../actors/job/machine.ts";
import { ManualClock } from "../runtime/core/clock.ts";
import type { RestartStrategy } from "../actors/job/restart-strategy.ts";

const s = suite("job machine");

interface Harness {
  readonly actor: Actor<typeof jobMachine>;
  readonly clock: ManualClock;
  readonly effects: string[];
  state(): string;
  /** Where the (nested) state is, e.g. "failing.waitingToRestart". */
  where(): string;
}

function start(o: Partial<JobMachineInput> & { strategy?: RestartStrategy; prepare?: () => Promise<void> } = {}): Harness {
  const clock = new ManualClock(1_000);
  const effects: string[] = [];
  const machine = jobMachine.provide({
    actions: {
      deploy: () => { effects.push("deploy"); },
      cancelAll: () => { effects.push("cancelAll"); },
      stopSources: (_, p) => { effects.push(`stopSources(savepoint=${p.savepoint})`); },
      reportDecision: ({ context }) => { effects.push(context.decision?.restart ? `restart in ${context.decision.delayMs}` : `give up: ${context.decision?.reason}`); },
      beginRestart: ({ context }) => { effects.push(`beginRestart(${context.restarts})`); },
    },
    actors: { prepareRestart: fromPromise(() => (o.prepare ?? (async () => { effects.push("prepareRestart"); }))()) },
  });
  const actor = createActor(machine, {
    clock,
    input: {
      job: "j", subtasks: o.subtasks ?? 2, checkpointing: o.checkpointing ?? true,
      strategy: o.strategy ?? { type: "fixed-delay", attempts: 1, delayMs: 500 }, random: () => 0.5,
    },
  });
  actor.start();
  const where = () => {
    const v = actor.getSnapshot().value;
    return typeof v === "string" ? v : Object.entries(v).map(([k, x]) => `${k}.${x}`).join();
  };
  return { actor, clock, effects, state: () => jobStateOf(actor.getSnapshot().value), where };
}

function running(h: Harness): void {
  h.actor.send({ type: "DEPLOY" });
  h.actor.send({ type: "DEPLOYED" });
  assert.is(h.state(), "running");
}

/** A failure, then the teardown finished (the runner sends ALL_TERMINATED once its subtasks are cancelled). */
function fail(h: Harness, outage = false): void {
  h.actor.send({ type: "SUBTASK_FAILED", error: "boom", at: h.clock.now(), outage });
  h.actor.send({ type: "ALL_TERMINATED", at: h.clock.now() });
}

const settle = (h: Harness, state: string) => waitFor(h.actor, (snap) => jobStateOf(snap.value) === state, { timeout: 5_000 });

s("deploys, runs, and finishes once the last subtask finished", () => {
  const h = start();
  assert.is(h.state(), "created");
  running(h);
  h.actor.send({ type: "SUBTASK_FINISHED" });
  assert.is(h.state(), "running", "one of two subtasks finished");
  h.actor.send({ type: "SUBTASK_FINISHED" });
  assert.is(h.state(), "finished");
  assert.equal(h.effects, ["deploy"]);
});

s("subtasks that finish before the deployment is confirmed are counted: finished at DEPLOYED", () => {
  // A tiny bounded job on another worker ends between its `run` command and DEPLOYED (it hung "running").
  const h = start();
  h.actor.send({ type: "DEPLOY" });
  h.actor.send({ type: "SUBTASK_FINISHED" });
  h.actor.send({ type: "SUBTASK_FINISHED" });
  assert.is(h.state(), "deploying");
  h.actor.send({ type: "DEPLOYED" });
  assert.is(h.state(), "finished");
  const some = start();
  some.actor.send({ type: "DEPLOY" });
  some.actor.send({ type: "SUBTASK_FINISHED" });
  some.actor.send({ type: "DEPLOYED" });
  assert.is(some.state(), "running", "one of two finished early");
  some.actor.send({ type: "SUBTASK_FINISHED" });
  assert.is(some.state(), "finished");
});

s("a stop asks the sources to end (with the savepoint flag) and ends stopped", () => {
  const h = start({ subtasks: 1 });
  running(h);
  h.actor.send({ type: "STOP", savepoint: true });
  assert.is(h.state(), "stopping");
  h.actor.send({ type: "SUBTASK_FINISHED" });
  assert.is(h.state(), "stopped");
  assert.equal(h.effects, ["deploy", "stopSources(savepoint=true)"]);
});

s("a failure waits the strategy's delay on the clock, then restarts; further failures while torn down are the same failure", async () => {
  const h = start();
  running(h);
  h.actor.send({ type: "SUBTASK_FAILED", error: "first", at: h.clock.now(), outage: false });
  h.actor.send({ type: "SUBTASK_FAILED", error: "second", at: h.clock.now(), outage: false });
  assert.is(h.where(), "failing.tearingDown");
  assert.is(h.actor.getSnapshot().context.failure, "first");
  assert.is(h.actor.getSnapshot().context.history.restarts, 1, "decided once, not once per failing subtask");
  h.actor.send({ type: "ALL_TERMINATED", at: h.clock.now() });
  assert.is(h.where(), "failing.waitingToRestart");
  assert.is(h.actor.getSnapshot().context.nextRestartAt, 1_500);
  h.clock.advance(499);
  assert.is(h.where(), "failing.waitingToRestart", "not before the delay");
  h.clock.advance(1);
  await settle(h, "restarting");
  assert.is(h.actor.getSnapshot().context.nextRestartAt, undefined);
  assert.is(h.actor.getSnapshot().context.restarts, 1);
  assert.is(h.actor.getSnapshot().context.failure, undefined);
  h.actor.send({ type: "DEPLOYED" });
  assert.is(h.state(), "running");
  assert.equal(h.effects, ["deploy", "restart in 500", "cancelAll", "prepareRestart", "beginRestart(1)", "deploy"]);
});

s("a final failure (the run's first restore failed) fails the job without a restart, whatever the strategy allows", () => {
  const h = start({ strategy: { type: "fixed-delay", attempts: 5, delayMs: 0 } });
  h.actor.send({ type: "DEPLOY" });
  h.actor.send({ type: "SUBTASK_FAILED", error: "cannot restore", at: h.clock.now(), outage: false, final: true });
  h.actor.send({ type: "ALL_TERMINATED", at: h.clock.now() });
  assert.is(h.state(), "failed");
  assert.is(h.actor.getSnapshot().context.restarts, 0);
  assert.match(h.effects.join(), /give up: no restart mends it/);
});

s("when the strategy gives up, the job fails once the teardown is done", () => {
  const h = start({ strategy: { type: "fixed-delay", attempts: 0, delayMs: 500 } });
  running(h);
  h.actor.send({ type: "SUBTASK_FAILED", error: "boom", at: h.clock.now(), outage: false });
  assert.is(h.where(), "failing.tearingDown", "still tearing down");
  h.actor.send({ type: "ALL_TERMINATED", at: h.clock.now() });
  assert.is(h.state(), "failed");
  assert.is(h.actor.getSnapshot().context.failure, "boom");
  assert.ok(h.effects.some((e) => e.startsWith("give up: fixed-delay: 0 restart attempt(s) used")), h.effects.join(" | "));
});

s("without checkpoints there is nothing to restart from", () => {
  const h = start({ checkpointing: false });
  running(h);
  fail(h);
  assert.is(h.state(), "failed");
  assert.ok(h.effects.some((e) => e.includes("checkpoints are off")));
});

s("exponential-delay: the delays grow on the simulated clock", async () => {
  const h = start({ strategy: { type: "exponential-delay", initialDelayMs: 100, maxDelayMs: 1000, multiplier: 2, resetThresholdMs: 60_000, jitter: 0 } });
  running(h);
  const delays: number[] = [];
  for (let i = 0; i < 4; i++) {
    fail(h);
    const at = h.actor.getSnapshot().context.nextRestartAt!;
    delays.push(at - h.clock.now());
    h.clock.advance(at - h.clock.now());
    await settle(h, "restarting");
    h.actor.send({ type: "DEPLOYED" });
  }
  assert.equal(delays, [100, 200, 400, 800]);
  assert.is(h.actor.getSnapshot().context.restarts, 4);
});

s("a failure in a NATS outage restarts after a short pause, not counted against the strategy", async () => {
  const h = start({ strategy: { type: "fixed-delay", attempts: 1, delayMs: 10_000 } });
  running(h);
  fail(h, true);
  assert.is(h.actor.getSnapshot().context.nextRestartAt! - h.clock.now(), OUTAGE_RESTART_DELAY_MS);
  h.clock.advance(OUTAGE_RESTART_DELAY_MS);
  await settle(h, "restarting");
  h.actor.send({ type: "DEPLOYED" });
  const c = h.actor.getSnapshot().context;
  assert.is(c.restarts, 1);
  assert.is(c.outageRestarts, 1);
  assert.is(c.history.restarts, 0, "the strategy's attempt is still unused");
  fail(h);
  assert.is(h.actor.getSnapshot().context.nextRestartAt! - h.clock.now(), 10_000, "the strategy's own delay for an ordinary failure");
});

s("a cancel while waiting to restart ends the job at once; a failed preparation fails it", async () => {
  const h = start();
  running(h);
  fail(h);
  h.actor.send({ type: "CANCEL" });
  assert.is(h.state(), "cancelled");
  h.clock.advance(10_000);
  assert.not.ok(h.effects.includes("prepareRestart"), "the delay was cancelled with its state");

  const g = start({ prepare: async () => { throw new Error("no checkpoint store"); } });
  running(g);
  fail(g);
  g.clock.advance(500);
  await settle(g, "failed");
});

s("a cancel tears down first: cancelling until every subtask terminated", () => {
  const h = start();
  running(h);
  h.actor.send({ type: "CANCEL" });
  assert.is(h.state(), "cancelling");
  h.actor.send({ type: "SUBTASK_FAILED", error: "late", at: 0, outage: false });
  assert.is(h.state(), "cancelling", "a failure during cancel is no restart");
  h.actor.send({ type: "ALL_TERMINATED", at: 0 });
  assert.is(h.state(), "cancelled");
});

s("a rescale (workers joined or left) tears down and redeploys at once, not counted as a restart", async () => {
  const h = start({ strategy: { type: "fixed-delay", attempts: 1, delayMs: 500 } });
  running(h);
  h.actor.send({ type: "RESCALE", cause: "worker w2 joined" });
  assert.is(h.where(), "failing.tearingDown");
  assert.equal(h.effects, ["deploy", "cancelAll"]);
  h.actor.send({ type: "ALL_TERMINATED", at: h.clock.now() });
  h.clock.advance(0);
  await settle(h, "restarting");
  const c = h.actor.getSnapshot().context;
  assert.is(c.restarts, 0, "not a restart");
  assert.is(c.rescales, 1);
  h.actor.send({ type: "DEPLOYED" });
  // The one restart the strategy allows is still there.
  fail(h);
  assert.is(h.where(), "failing.waitingToRestart");
  assert.ok(h.effects.includes("restart in 500"), h.effects.join());
});

s("a stop asked for while the job redeploys (restarting) waits until it runs again (whenRunning)", async () => {
  const h = start({ strategy: { type: "fixed-delay", attempts: 1, delayMs: 500 } });
  running(h);
  fail(h);
  let stops = 0;
  whenRunning(h.actor, () => { stops++; });
  h.clock.advance(500);
  await settle(h, "restarting");
  assert.is(stops, 0, "not while restarting");
  h.actor.send({ type: "DEPLOYED" });
  assert.is(stops, 1, "once it runs again");
  h.actor.send({ type: "DEPLOYED" });
  whenRunning(h.actor, () => { stops++; });
  assert.is(stops, 2, "at once when running");
});

s("a stop (no savepoint) while the job fails over ends it stopped at once (nothing runs), never restarting it", async () => {
  const waiting = start({ strategy: { type: "fixed-delay", attempts: 3, delayMs: 60_000 } });
  running(waiting);
  fail(waiting);
  assert.is(waiting.where(), "failing.waitingToRestart");
  waiting.actor.send({ type: "STOP", savepoint: true });
  assert.is(waiting.where(), "failing.waitingToRestart", "a savepoint needs the job running: that stop waits (whenRunning)");
  waiting.actor.send({ type: "STOP", savepoint: false });
  assert.is(waiting.state(), "stopped", "not after the restart delay");
  assert.ok(waiting.actor.getSnapshot().context.stoppedWhileRestarting);
  waiting.clock.advance(60_000);
  assert.not.ok(waiting.effects.includes("prepareRestart"), "the delay was dropped with its state");

  // Preparing the restart (waiting for NATS to come back): the stop does not wait for it.
  const preparing = start({ prepare: () => new Promise<void>(() => {}) });
  running(preparing);
  fail(preparing);
  preparing.clock.advance(500);
  assert.is(preparing.where(), "failing.preparingRestart");
  preparing.actor.send({ type: "STOP", savepoint: false });
  assert.is(preparing.state(), "stopped");

  // Tearing down: noted, and the job ends stopped once every subtask terminated instead of restarting.
  const tearing = start();
  running(tearing);
  tearing.actor.send({ type: "SUBTASK_FAILED", error: "boom", at: tearing.clock.now(), outage: false });
  tearing.actor.send({ type: "STOP", savepoint: false });
  assert.is(tearing.where(), "failing.tearingDown");
  tearing.actor.send({ type: "ALL_TERMINATED", at: tearing.clock.now() });
  assert.is(tearing.state(), "stopped");
  assert.not.ok(tearing.effects.some((e) => e.startsWith("beginRestart")));

  // A failure no restart mends still fails the job, stop or not.
  const final = start();
  running(final);
  final.actor.send({ type: "SUBTASK_FAILED", error: "bad checkpoint", at: final.clock.now(), outage: false, final: true });
  final.actor.send({ type: "STOP", savepoint: false });
  final.actor.send({ type: "ALL_TERMINATED", at: final.clock.now() });
  assert.is(final.state(), "failed");
});

s("events a state does not know are ignored", () => {
  const h = start();
  h.actor.send({ type: "DEPLOYED" });
  h.actor.send({ type: "STOP", savepoint: false });
  assert.is(h.state(), "created");
  running(h);
  h.actor.send({ type: "ALL_TERMINATED", at: 0 });
  assert.is(h.state(), "running");
});

s("a new leader carries on a live run's restarts (CARRY_ON, before it deploys); the restarts after count on from them", async () => {
  const h = start();
  h.actor.send({ type: "CARRY_ON", restarts: 3, notCounted: 2 });
  running(h);
  h.actor.send({ type: "CARRY_ON", restarts: 9, notCounted: 9 });
  assert.equal([h.actor.getSnapshot().context.restarts, h.actor.getSnapshot().context.outageRestarts], [3, 2], "only before it runs");
  fail(h);
  h.clock.advance(500);
  await settle(h, "restarting");
  assert.is(h.actor.getSnapshot().context.restarts, 4);
  assert.ok(h.effects.includes("beginRestart(4)"), h.effects.join(" | "));
});

s.run();
