// A worker's machine as pure logic: it follows until elected, leads until deposed, leaves on request,
// and ends with its job; the effects (lead, abdicate, fence, leave) are recorded, not performed.
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { createActor } from "xstate";
import { workerMachine } from "../actors/worker/machine.ts";

const s = suite("worker machine");

function start() {
  const effects: string[] = [];
  const actor = createActor(workerMachine.provide({
    actions: {
      lead: () => { effects.push("lead"); },
      abdicate: (_, p) => { effects.push(`abdicate: ${p.reason}`); },
      fence: (_, p) => { effects.push(`fence: ${p.reason}`); },
      leave: () => { effects.push("leave"); },
    },
  }), { input: { worker: "w1" } });
  actor.start();
  return { actor, effects, state: () => actor.getSnapshot().value as string };
}

s("joins, follows, leads when elected, follows again when deposed", () => {
  const w = start();
  assert.is(w.state(), "joining");
  w.actor.send({ type: "JOINED" });
  assert.is(w.state(), "following");
  w.actor.send({ type: "FENCED", reason: "epoch 4 without it" });
  assert.is(w.state(), "following");
  w.actor.send({ type: "ELECTED", epoch: 5 });
  assert.is(w.state(), "leading");
  assert.is(w.actor.getSnapshot().context.leaderEpoch, 5);
  w.actor.send({ type: "FENCED", reason: "ignored while leading" });
  w.actor.send({ type: "DEPOSED", reason: "w2 appended" });
  assert.is(w.state(), "following");
  assert.equal(w.effects, ["fence: epoch 4 without it", "lead", "abdicate: w2 appended"]);
});

s("leaves on request and ends when the job ends", () => {
  const a = start();
  a.actor.send({ type: "ELECTED", epoch: 1 });
  a.actor.send({ type: "LEAVE" });
  assert.is(a.state(), "leaving");
  a.actor.send({ type: "ELECTED", epoch: 2 });
  assert.is(a.state(), "leaving", "a leaving worker does not lead again");
  a.actor.send({ type: "LEFT" });
  assert.is(a.state(), "left");
  const b = start();
  b.actor.send({ type: "JOINED" });
  b.actor.send({ type: "JOB_ENDED", state: "finished" });
  assert.is(b.state(), "ended");
  assert.is(b.actor.getSnapshot().context.jobState, "finished");
  assert.equal(b.effects, []);
});

s.run();
