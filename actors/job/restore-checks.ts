// Restores refused before anything runs, in one line naming what changed and the way out: a job changed
// between a checkpoint and its restore in a way its keyed state cannot follow.

import type { ResolvedJobOptions } from "../../runtime/contracts/job-options.ts";
import { ErrorCode, WeirError } from "../../runtime/core/errors.ts";
import type { JobGraph } from "../../runtime/graph/job-graph.ts";
import type { RestoreBundle } from "../../runtime/checkpoint/restore.ts";

/**
 * Keyed state of one backend cannot be read by the other (the heap's full snapshots vs the changelog
 * deltas over KV). Refused here rather than when the first keyed subtask opens, naming the way out.
 */
export function checkStateBackend(restore: RestoreBundle, job: ResolvedJobOptions): void {
  const snapshots = restore.checkpoint.subtasks.flatMap((s) => s.keyed?.snapshots ?? []);
  if (snapshots.length === 0) return;
  const was = snapshots.some((s) => s.kind === "full") ? "heap" : "jetstream-kv";
  if (was === job.stateBackend) return;
  throw new WeirError(ErrorCode.Restore, `${restore.checkpoint.kind} ${restore.id} was taken with the ${was} state backend, and this job runs ${job.stateBackend}: keyed state does not move between backends; run it with stateBackend "${was}" (--state-backend ${was}), or start without state (--restore none)`);
}

/**
 * An operator whose keyed state is laid out by its settings (fixed windows: state per window start, a
 * timer at each window's end, so the size, slide and offset) records them with its state; restored under
 * others, its open windows would fire with the wrong bounds or mix with new ones, so it is refused.
 */
export function checkStateLayouts(restore: RestoreBundle, graph: JobGraph): void {
  for (const v of graph.vertices) {
    for (const n of v.nodes) {
      if (n.kind !== "operator" || n.spec.stateLayout === undefined) continue;
      const was = restore.statesOf(n.uid).map((p) => (p.state as { windows?: unknown } | undefined)?.windows).find((w) => typeof w === "string");
      if (was === undefined || was === n.spec.stateLayout) continue;
      throw new WeirError(ErrorCode.Restore, `${restore.checkpoint.kind} ${restore.id} holds the windows of operator "${n.uid}" as ${was}, and this job has ${n.spec.stateLayout}: its open windows would fire with the wrong bounds or mix with the new ones; keep ${was}, or give the changed operator a new uid (with allowNonRestoredState to drop the old windows), or start without state (--restore none)`);
    }
  }
}
