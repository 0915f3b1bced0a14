// What an HTTP page reads about a job: a read-only snapshot, taken when asked (a scrape, a page load),
// never kept up to date per record. `weir run` has one source, its own process (localJobViews); a
// dashboard over every job on a NATS server can provide the same shape from the jobs' status replies.

import type { JobStatus } from "../../../actors/job/job-status.ts";
import type { SubtaskStatus } from "../../../actors/subtask/status.ts";

export interface JobView {
  readonly job: string;
  /** The worker (process) this view is taken on. */
  readonly worker: string;
  /** Whether that worker leads the job (its figures for the whole job, checkpoints and restarts, are the leader's). */
  readonly leader: boolean;
  /** When the snapshot was taken (ISO 8601). */
  readonly at: string;
  /** The status object as `weir status <job> --json` prints it. */
  readonly status: JobStatus;
  /** The subtasks that run in this worker (the leader's status also mirrors the others' reports). */
  readonly localSubtasks: readonly SubtaskStatus[];
}

export interface JobViewSource {
  views(): Promise<readonly JobView[]>;
}

/** The job a `weir run` process is a worker of. */
export function localJobViews(o: { status: () => JobStatus; workerId: string }): JobViewSource {
  return {
    views: async () => {
      const status = o.status() as JobStatus & { worker?: string; leader?: string };
      const worker = status.worker ?? o.workerId;
      // Subtasks mirrored from other workers' reports carry `worker` (actors/worker/remote-subtask.ts).
      const localSubtasks = status.subtasks.filter((s) => {
        const on = (s as { worker?: string }).worker;
        return on === undefined || on === worker;
      });
      return [{ job: status.job, worker, leader: status.leader === undefined || status.leader === worker, at: new Date().toISOString(), status, localSubtasks }];
    },
  };
}

/**
 * A source with no views until `attach`: `weir run --http` serves its dashboard from the moment the port
 * is bound, while the job is still starting (its first deployment may wait and retry), not only once it runs.
 */
export class PendingJobViews implements JobViewSource {
  private source: JobViewSource | undefined;
  attach(source: JobViewSource): void { this.source = source; }
  views(): Promise<readonly JobView[]> { return this.source ? this.source.views() : Promise.resolve([]); }
}
