// A worker that takes over a live run as leader carries on the job's history: the restarts, last failures
// and rebalances the leader before it wrote to the jobs bucket (actors/job/last-status.ts), and the
// takeover itself. A lost leader is a restart not counted against the restart strategy, as a lost follower
// is (leader-side.ts onWorkerGone), so `weir status` and weir_job_restarts_total show that the job
// crashed and replayed; a leader that left hands over, a rebalance as a follower leaving is.

import type { NatsConnection } from "@nats-io/transport-node";
import type { LeaseWon } from "../../runtime/cluster/leader-lease.ts";
import { readLastStatusEntry, type LastStatus } from "../job/last-status.ts";
import type { JobFailure } from "../job/job-status.ts";

/** A takeover of a live run: how the lease was won, and when the run's last deployment was stored. */
export interface Takeover extends LeaseWon {
  readonly deployedAt: Date;
  /** The lease, as the job options set it (the failure says how long the leader was silent). */
  readonly leaseMs: number;
}

/** What a new leader starts from: the history so far, the takeover included. */
export interface CarriedHistory {
  readonly restarts: number;
  readonly notCounted: number;
  readonly failures: readonly JobFailure[];
  readonly rebalances: NonNullable<LastStatus["rebalances"]>;
  /** The cause of the new leader's first deployment, as `weir status` lists rebalances. */
  readonly cause: string;
}

const ENDED = new Set(["finished", "stopped", "failed", "cancelled"]);

/**
 * The previous leader's last status, if it belongs to this run: written by the leader the lease was won
 * from, or stored since the run's last deployment (server times both). An older entry (an earlier run's,
 * its leader's writes failing) would carry on another run's history.
 */
export async function previousStatus(nc: NatsConnection, job: string, t: Takeover): Promise<LastStatus | undefined> {
  const entry = await readLastStatusEntry(nc, job);
  if (!entry || ENDED.has(entry.status.state)) return undefined;
  const ours = (t.from !== undefined && entry.status.worker === t.from) || entry.storedAt.getTime() >= t.deployedAt.getTime();
  return ours ? entry.status : undefined;
}

/** The history the new leader `worker` starts from, given the previous leader's last status (if any). */
export function carriedHistory(worker: string, t: Takeover, before: LastStatus | undefined, now = new Date()): CarriedHistory {
  const leader = t.from !== undefined && t.from !== worker ? `leader worker ${t.from}` : "the previous leader";
  const restarts = before?.restarts ?? 0;
  const notCounted = before?.restartsNotCounted ?? 0;
  const history = { failures: before?.failures ?? [], rebalances: before?.rebalances ?? [] };
  if (t.why === "released" || t.why === "free") return { restarts, notCounted, ...history, cause: `${leader} left` };
  const why = t.why === "gone"
    ? "is gone (its subscriptions vanished)"
    : `lost its lease (no append to the job log for ${t.leaseMs} ms: a crash, a freeze or a NATS outage)`;
  const failure: JobFailure = {
    at: now.toISOString(),
    error: `${leader} ${why}; worker ${worker} took over the running job and restarts it from the last checkpoint`,
    restarted: true,
  };
  return {
    restarts: restarts + 1, notCounted: notCounted + 1,
    failures: [...history.failures, failure], rebalances: history.rebalances,
    cause: `${leader} ${t.why === "gone" ? "crashed" : "lost its lease"}`,
  };
}
