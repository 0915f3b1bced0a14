// Checkpoints of a job at rest, as pure logic: a subtask's activity between snapshots
// (actors/subtask/activity.ts) and the coordinator's view of the job (actors/checkpoint/idle-checkpoints.ts).
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { SubtaskActivity } from "../actors/subtask/activity.ts";
import { IdleCheckpoints } from "../actors/checkpoint/idle-checkpoints.ts";

const activity = suite("subtask activity");

activity("a snapshot says whether anything happened since the one before", () => {
  const told: number[] = [];
  const a = new SubtaskActivity((after) => told.push(after));
  assert.ok(a.capture(1), "nothing happened since the start");
  a.mark();
  assert.not.ok(a.capture(2), "a frame came in between");
  assert.ok(a.capture(3));
  assert.equal(told, [1], "active after snapshot 1, which found it quiet: told");
});

activity("the first activity after a quiet snapshot is told once, and repeated for status until the next snapshot", () => {
  const told: number[] = [];
  const a = new SubtaskActivity((after) => told.push(after));
  a.capture(4);
  assert.is(a.activeAfter, undefined);
  a.mark();
  a.mark();
  a.mark();
  assert.equal(told, [4], "once, naming the checkpoint it came after");
  assert.is(a.activeAfter, 4);
  assert.not.ok(a.capture(5));
  assert.is(a.activeAfter, undefined, "the next snapshot holds it");
  a.mark();
  assert.equal(told, [4], "after a snapshot that was not quiet, the coordinator takes the next checkpoint anyway: nothing to tell");
});

const idle = suite("idle checkpoints");
const [x, y, z] = [{}, {}, {}];

idle("at rest once a completed checkpoint found every subtask quiet", () => {
  const c = new IdleCheckpoints();
  assert.not.ok(c.isIdle([x, y]), "no checkpoint yet");
  c.completed(1, false, [x, y]);
  assert.not.ok(c.isIdle([x, y]));
  c.completed(2, true, [x, y]);
  assert.ok(c.isIdle([x, y]));
});

idle("activity after the quiet checkpoint ends the rest; activity before it does not", () => {
  const c = new IdleCheckpoints();
  c.activity(1); // late news, from before checkpoint 2
  c.completed(2, true, [x, y]);
  assert.ok(c.isIdle([x, y]));
  c.activity(2);
  assert.not.ok(c.isIdle([x, y]));
  c.completed(3, true, [x, y]);
  assert.ok(c.isIdle([x, y]), "a later quiet checkpoint: at rest again");
});

idle("told before the quiet checkpoint completed (a subtask acknowledged and went on): not at rest", () => {
  const c = new IdleCheckpoints();
  c.activity(5);
  c.completed(5, true, [x, y]);
  assert.not.ok(c.isIdle([x, y]));
});

idle("other subtasks (a restart or a rescale) are not at rest until a checkpoint of theirs says so", () => {
  const c = new IdleCheckpoints();
  c.completed(2, true, [x, y]);
  assert.not.ok(c.isIdle([x, z]));
  assert.not.ok(c.isIdle([x]));
  assert.not.ok(c.isIdle([x, y, z]));
});

activity.run();
idle.run();
