// Placement of subtasks on workers (pure): balanced groups, one index's subtasks together, sticky, deterministic.
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { placeSubtasks } from "../runtime/cluster/placement.ts";

const s = suite("placement");
const V = (uid: string, parallelism: number) => ({ uid, name: `op ${uid}`, parallelism });

function groupCounts(p: Map<string, string[]>): number[] {
  return [...p.values()].map((ids) => new Set(ids.map((id) => id.split("#")[1])).size);
}
function workerOf(p: Map<string, string[]>): Map<string, string> {
  const m = new Map<string, string>();
  for (const [w, ids] of p) for (const id of ids) m.set(id, w);
  return m;
}

s("every subtask placed once, with the id Subtask uses; one index's subtasks on one worker", () => {
  const p = placeSubtasks([V("src", 4), V("agg", 4), V("sink", 2)], ["w2", "w1"]);
  assert.equal([...p.keys()], ["w1", "w2"]);
  const all = [...p.values()].flat().sort();
  assert.equal(all, ["agg#0", "agg#1", "agg#2", "agg#3", "sink#0", "sink#1", "src#0", "src#1", "src#2", "src#3"]);
  const at = workerOf(p);
  for (let i = 0; i < 4; i++) {
    assert.is(at.get(`agg#${i}`), at.get(`src#${i}`), `group ${i}`);
    if (i < 2) assert.is(at.get(`sink#${i}`), at.get(`src#${i}`), `group ${i}`);
  }
});

s("balanced: group counts differ by at most one, for many shapes", () => {
  for (let groups = 1; groups <= 9; groups++) {
    for (let workers = 1; workers <= 5; workers++) {
      const ws = Array.from({ length: workers }, (_, i) => `w${i}`);
      const counts = groupCounts(placeSubtasks([V("a", groups), V("b", Math.max(1, groups - 1))], ws));
      assert.ok(Math.max(...counts) - Math.min(...counts) <= 1, `${groups} groups on ${workers} workers: ${counts}`);
      assert.is(counts.reduce((x, y) => x + y, 0), groups);
      // Also when everything ran on one worker before.
      const skewed = new Map(Array.from({ length: groups }, (_, i) => [`a#${i}`, "w0"] as [string, string]));
      const again = groupCounts(placeSubtasks([V("a", groups)], ws, skewed));
      assert.ok(Math.max(...again) - Math.min(...again) <= 1, `${groups} groups from one worker onto ${workers}: ${again}`);
    }
  }
});

s("sticky: a group stays on its worker unless its worker left or is above its fair share", () => {
  const vs = [V("a", 6), V("b", 6)];
  const before = placeSubtasks(vs, ["w1", "w2", "w3"]);
  const prev = workerOf(before);
  // A fourth worker joins: 6 groups on 4 workers is 2,2,1,1; only the groups the newcomer needs move.
  const after = placeSubtasks(vs, ["w1", "w2", "w3", "w4"], prev);
  const now = workerOf(after);
  const moved = [...now].filter(([id, w]) => prev.get(id) !== w).map(([id]) => id.split("#")[1]);
  assert.is(new Set(moved).size, 1, `moved groups: ${[...new Set(moved)]}`);
  assert.is(after.get("w4")!.length, 2);
  // w2 leaves: only its groups move, to the others.
  const without = workerOf(placeSubtasks(vs, ["w1", "w3"], prev));
  for (const [id, w] of prev) if (w !== "w2") assert.is(without.get(id), w, id);
  // Same workers, same previous placement: nothing moves, even with the workers listed in another order.
  assert.equal(workerOf(placeSubtasks(vs, ["w3", "w1", "w2"], prev)), prev);
});

s("deterministic: the same input gives the same output", () => {
  const vs = [V("a", 7), V("b", 3)];
  const prev = new Map([["a#0", "w3"], ["a#1", "w3"], ["a#2", "w3"], ["b#2", "gone"]]);
  const one = placeSubtasks(vs, ["w1", "w2", "w3"], prev);
  for (let i = 0; i < 5; i++) assert.equal(placeSubtasks(vs, ["w2", "w3", "w1"], prev), one);
  // w3 held 3 of 7 groups: its fair share is 3 only if it gets the one extra slot, which it does here.
  assert.is(groupCounts(one).reduce((x, y) => x + y, 0), 7);
});

s("bad input is refused with a clear message", () => {
  assert.throws(() => placeSubtasks([V("a", 2)], []), /no workers/);
  assert.throws(() => placeSubtasks([V("a", 0)], ["w"]), /vertex "op a" parallelism/);
  assert.throws(() => placeSubtasks([V("a", 1), V("a", 1)], ["w"]), /appears twice/);
});

s.run();
