// What a worker that does not lead can say about the job: the subtasks it runs and who leads. The whole
// job's status (every worker, checkpoints, restarts) is the leader's: `weir status <job>` asks the leader.

import type { ResolvedJobOptions } from "../../runtime/contracts/job-options.ts";
import { describeRestartStrategy } from "../job/restart-strategy.ts";
import { modeOf, recordCounts, type JobStatus } from "../job/job-status.ts";
import type { WorkerHost } from "./worker-host.ts";
import type { WorkerSummary } from "./leader-side.ts";

export function followerStatus(o: { job: ResolvedJobOptions; started: number; host: Pick<WorkerHost, "running" | "currentEpoch" | "deployedParallelism" | "natsDisconnectedSince"> | undefined; worker: string; leader: string | undefined; spareIn?: number | undefined }):
  JobStatus & { workers: readonly WorkerSummary[]; epoch: number; worker: string; leader?: string } {
  // Before its host exists (the worker is still opening the job log): nothing runs yet.
  const host = o.host ?? { running: [], currentEpoch: -1, deployedParallelism: undefined, natsDisconnectedSince: undefined };
  const subtasks = host.running.map((s) => s.status());
  const running = host.running.some((s) => !s.isTerminal);
  // Left out by deployment `spareIn`: spare until a later one gives it subtasks (the host's epoch passes it).
  const spare = o.spareIn !== undefined && o.spareIn > host.currentEpoch && host.running.length === 0;
  return {
    job: o.job.name,
    // A spare worker's job runs (on the others): its own progress line and readiness say so, not "deploying".
    state: running || spare ? "running" : "deploying",
    ...(spare ? { spare: true } : {}),
    attempt: `e${host.currentEpoch}`,
    startedAt: new Date(o.started).toISOString(),
    uptimeMs: Date.now() - o.started,
    // With "auto" the leader's deployment sets it (job.parallelism is only the default before any).
    parallelism: host.deployedParallelism ?? o.job.parallelism,
    ...modeOf(o.job),
    ...recordCounts(host.running),
    deadLetters: subtasks.reduce((n, s) => n + s.deadLetters, 0),
    restarts: 0,
    restartStrategy: describeRestartStrategy(o.job.restartStrategy),
    failures: [],
    ...(host.natsDisconnectedSince !== undefined ? { natsDisconnectedSince: new Date(host.natsDisconnectedSince).toISOString() } : {}),
    subtasks,
    workers: [],
    epoch: host.currentEpoch,
    worker: o.worker,
    ...(o.leader ? { leader: o.leader } : {}),
  };
}
