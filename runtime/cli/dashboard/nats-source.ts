// `weir dashboard`: the job views of every job on a NATS server, read as `weir status` reads them (the
// jobs answer a ping; each leader answers a status request with the whole job). The list of jobs is
// refreshed every few seconds, the statuses on every snapshot.

import type { NatsConnection } from "@nats-io/transport-node";
import type { JobStatus } from "../../../actors/job/job-status.ts";
import type { JobView, JobViewSource } from "../http/job-view.ts";
import { fetchStatus, listJobs } from "../commands/control.ts";
import { ErrorCode, WeirError } from "../../core/errors.ts";

/** How long a job listing is reused (a ping waits for answers; statuses are asked each snapshot). */
export const LIST_EVERY_MS = 5000;
const PING_WAIT_MS = 300;

/** How long the server may take to answer a flush before the snapshot says it is unreachable. */
const SERVER_WAIT_MS = 2000;

export function natsJobViews(nc: NatsConnection): JobViewSource {
  const listing = { at: 0, jobs: [] as string[] };
  return {
    views: async () => {
      // With the server gone the pings find no job: that is "unreachable", not "no running jobs".
      let timer: NodeJS.Timeout | undefined;
      const answered = await Promise.race([nc.flush().then(() => true, () => false), new Promise<boolean>((r) => { timer = setTimeout(() => r(false), SERVER_WAIT_MS); })]);
      clearTimeout(timer);
      if (!answered || nc.isClosed()) throw new WeirError(ErrorCode.NatsUnreachable, `the NATS server does not answer (within ${SERVER_WAIT_MS} ms): the jobs are unknown`);
      if (Date.now() - listing.at > LIST_EVERY_MS) {
        // Jobs listed before stay while they answer their status: a busy one answers a ping late.
        const pinged = (await listJobs(nc, PING_WAIT_MS)).map((j) => j.job);
        listing.jobs = [...new Set([...listing.jobs, ...pinged])].sort();
        listing.at = Date.now();
      }
      const statuses = await Promise.all(listing.jobs.map((job) => fetchStatus(nc, job).catch(() => undefined)));
      // A job that does not answer its status is listed again once it answers a ping.
      listing.jobs = listing.jobs.filter((_, i) => statuses[i] !== undefined);
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

/**
 * The page of a `weir run --http` worker that does not lead: the whole job as its leader reports it (one
 * view per worker, as `weir dashboard` shows it), its own part (`local`) while the leader does not answer.
 * Its /metrics stay its own: each worker serves the series of the subtasks it runs.
 */
export function wholeJobViews(local: JobViewSource, leaderStatus: () => Promise<JobStatus | undefined>): JobViewSource {
  return {
    views: async () => {
      const own = await local.views();
      if (own.length === 0 || own.every((v) => v.leader)) return own;
      const whole = await leaderStatus().catch(() => undefined);
      return whole === undefined ? own : workerViews(whole);
    },
  };
}
