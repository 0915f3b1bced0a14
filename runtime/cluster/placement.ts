// Where each subtask of a distributed job runs. The subtasks of one index across all vertices form a
// group placed on one worker (a chain's subtask i talks to its neighbours' subtask i locally); groups are
// spread evenly over the workers, and a group stays on the worker it ran on when that worker is still
// there and within its fair share, so its state cache stays warm. Pure and deterministic.

import { ErrorCode, WeirError } from "../core/errors.ts";

/** The id `Subtask.id` uses (actors/subtask/subtask.ts): `<vertex uid>#<index>`. */
export function subtaskId(vertexUid: string, index: number): string {
  return `${vertexUid}#${index}`;
}

export function placeSubtasks(
  vertices: ReadonlyArray<{ uid: string; name: string; parallelism: number }>,
  workers: readonly string[],
  previous?: ReadonlyMap<string /* subtaskId */, string /* worker */>,
): Map<string /* worker */, string[] /* subtaskIds */> {
  if (workers.length === 0) throw new WeirError(ErrorCode.InvalidOption, "placeSubtasks: no workers to place subtasks on");
  const sorted = [...new Set(workers)].sort();
  if (sorted.length !== workers.length) throw new WeirError(ErrorCode.InvalidOption, "placeSubtasks: workers: duplicate worker id");
  const uids = new Set<string>();
  for (const v of vertices) {
    if (!Number.isInteger(v.parallelism) || v.parallelism < 1) {
      throw new WeirError(ErrorCode.InvalidOption, `placeSubtasks: vertex "${v.name}" parallelism: expected a positive integer, got ${v.parallelism}`);
    }
    if (uids.has(v.uid)) throw new WeirError(ErrorCode.InvalidOption, `placeSubtasks: vertex uid "${v.uid}" appears twice`);
    uids.add(v.uid);
  }
  const groupCount = Math.max(0, ...vertices.map((v) => v.parallelism));
  const groups: string[][] = [];
  for (let i = 0; i < groupCount; i++) groups.push(vertices.filter((v) => v.parallelism > i).map((v) => subtaskId(v.uid, i)));

  const base = Math.floor(groupCount / sorted.length);
  let extra = groupCount % sorted.length;
  const placed = new Map<string, number[]>(sorted.map((w) => [w, []]));

  // Keep each group where most of its subtasks ran (ties: the first subtask's worker), up to the fair share.
  const present = new Set(sorted);
  const previousGroups = new Map<string, number[]>(sorted.map((w) => [w, []]));
  groups.forEach((ids, i) => {
    const votes = new Map<string, number>();
    for (const id of ids) {
      const w = previous?.get(id);
      if (w !== undefined && present.has(w)) votes.set(w, (votes.get(w) ?? 0) + 1);
    }
    let best: string | undefined;
    for (const [w, n] of votes) if (best === undefined || n > votes.get(best)!) best = w;
    if (best !== undefined) previousGroups.get(best)!.push(i);
  });
  const assigned = new Set<number>();
  for (const w of sorted) {
    const mine = previousGroups.get(w)!;
    const keep = Math.min(mine.length, base + (mine.length > base && extra > 0 ? 1 : 0));
    if (keep > base) extra--;
    for (const i of mine.slice(0, keep)) { placed.get(w)!.push(i); assigned.add(i); }
  }
  // The rest to the least loaded worker (ties: lowest id): counts end within one of each other.
  for (let i = 0; i < groupCount; i++) {
    if (assigned.has(i)) continue;
    let target = sorted[0]!;
    for (const w of sorted) if (placed.get(w)!.length < placed.get(target)!.length) target = w;
    placed.get(target)!.push(i);
  }
  return new Map(sorted.map((w) => [w, placed.get(w)!.sort((a, b) => a - b).flatMap((i) => groups[i]!)]));
}
