// A worker's acknowledgements go to the leader as one report per checkpoint (actors/worker/ack-batch.ts):
// at once when its last subtask acknowledges, when the subtasks expected change, or when the wait runs out.
// Pure logic on a simulated timer.
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { AckBatch, type AckBatchTimers } from "../actors/worker/ack-batch.ts";
import type { SubtaskSnapshot } from "../runtime/checkpoint/metadata.ts";

const s = suite("ack batch");

/** Timers that fire only when the test says so. */
function manualTimers(): AckBatchTimers & { fire(): void; armed(): number } {
  const live = new Map<number, () => void>();
  let next = 0;
  return {
    setTimeout: (f) => { live.set(++next, f); return next; },
    clearTimeout: (h) => { live.delete(h as number); },
    fire: () => { const fs = [...live.values()]; live.clear(); for (const f of fs) f(); },
    armed: () => live.size,
  };
}

const snap = (index: number): SubtaskSnapshot => ({ vertexUid: "v", index, parallelism: 3, operators: {}, ackedAtMs: index, alignmentMs: 0, stateChanged: { entries: 0, bytes: 0 } });

function setup(expected: number) {
  const timers = manualTimers();
  const sent: Array<[number, number[]]> = [];
  const state = { expected };
  const batch = new AckBatch(() => state.expected, (id, snapshots) => sent.push([id, snapshots.map((x) => x.index)]), 100, timers);
  return { timers, sent, state, batch };
}

s("one report once every subtask of the worker acknowledged, none before", () => {
  const { batch, sent, timers } = setup(3);
  batch.add(7, snap(0));
  batch.add(7, snap(1));
  assert.equal(sent, []);
  batch.add(7, snap(2));
  assert.equal(sent, [[7, [0, 1, 2]]]);
  assert.is(timers.armed(), 0, "its wait is cleared");
});

s("the wait runs out: what came goes, and the rest goes the moment it is complete", () => {
  const { batch, sent, timers } = setup(3);
  batch.add(7, snap(0));
  timers.fire();
  assert.equal(sent, [[7, [0]]]);
  batch.add(7, snap(1));
  assert.equal(sent.length, 1);
  batch.add(7, snap(2));
  assert.equal(sent, [[7, [0]], [7, [1, 2]]]);
});

s("a subtask that finishes (no longer expected) completes the batch; a decline sends it at once", () => {
  const { batch, sent, state } = setup(3);
  batch.add(7, snap(0));
  batch.add(7, snap(1));
  state.expected = 2;
  batch.recheck();
  assert.equal(sent, [[7, [0, 1]]]);
  batch.add(8, snap(0));
  batch.flush(8);
  assert.equal(sent, [[7, [0, 1]], [8, [0]]]);
});

s("checkpoints in flight together are kept apart; a new deployment drops what waits", () => {
  const { batch, sent, timers } = setup(2);
  batch.add(7, snap(0));
  batch.add(8, snap(0));
  batch.add(8, snap(1));
  assert.equal(sent, [[8, [0, 1]]]);
  batch.clear();
  assert.is(timers.armed(), 0);
  timers.fire();
  assert.equal(sent, [[8, [0, 1]]]);
});

s.run();
