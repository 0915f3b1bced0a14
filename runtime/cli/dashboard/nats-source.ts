// `weir dashboard`: the job views of every job on a NATS server, read as `weir status` reads them (the
// jobs answer a ping; each leader answers a status request with the whole job). The list of jobs is
// refreshed every few seconds, the statuses on every snapshot.

import type { NatsConnection } from "@nats-io/transport-node";
import type { JobStatus } from "../../../actors/job/job-status.ts";
import type { JobView, JobViewSource } from "../http/job-view.ts";
import { fetchStatus, listJobs } from "../commands/control.ts";

/** How long a job listing is reused (a ping waits for answers; statuses are asked each snapshot). */
export const LIST_EVERY_MS = 5000;
const PING_WAIT_MS = 300;

export function natsJobViews(nc: NatsConnection): JobViewSource {
  const listing = { at: 0, jobs: [] as string[] };
  return {
    views: async () => {
      if (Date.now() - listing.at > LIST_EVERY_MS) {
        listing.jobs = [...new Set((await listJobs(nc, PING_WAIT_MS)).map((j) => j.job))].sort();
        listing.at = Date.now();
      }
      const statuses = await Promise.all(listing.jobs.map((job) => fetchStatus(nc, job).catch(() => undefined)));
      // A job that stopped answering is listed again only if it answers the next ping.
      if (statuses.some((s) => s === undefined)) listing.at = 0;
      return statuses.filter((s): s is JobStatus => s !== undefined).flatMap(workerViews);
    },
  };
}

/**
 * The leader's status covers every subtask of the job (it mirrors the other workers' reports, each marked
 * with its `worker`): one view per worker, so each subtask's series carries the worker it runs on.
 */
export function workerViews(status: JobStatus): JobView[] {
  const s = status as JobStatus & { worker?: string; leader?: string };
  const leader = s.leader ?? s.worker ?? status.workers?.find((w) => w.leader)?.id ?? "leader";
  const at = new Date().toISOString();
  const byWorker = new Map<string, JobStatus["subtasks"][number][]>([[leader, []]]);
  for (const w of status.workers ?? []) byWorker.set(w.id, []);
  for (const sub of status.subtasks) {
    const on = (sub as { worker?: string }).worker ?? leader;
    const list = byWorker.get(on);
    if (list) list.push(sub); else byWorker.set(on, [sub]);
  }
  return [...byWorker].map(([worker, localSubtasks]) => ({ job: status.job, worker, leader: worker === leader, at, status, localSubtasks }));
}
