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
      return statuses.filter((s): s is JobStatus => s !== undefined).map(leaderView);
    },
  };
}

/** The leader's status covers every subtask of the job (it mirrors the other workers' reports). */
function leaderView(status: JobStatus): JobView {
  const s = status as JobStatus & { worker?: string; leader?: string };
  const worker = s.leader ?? s.worker ?? status.workers?.find((w) => w.leader)?.id ?? "leader";
  return { job: status.job, worker, leader: true, at: new Date().toISOString(), status, localSubtasks: status.subtasks };
}
