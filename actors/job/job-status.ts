// What a job reports about itself: the status object (`weir status`, JobClient.status(), the control
// protocol's status reply), the result it ends with, its bounded list of failures, and the small summary
// kept as its last known status.

import type { JobMachineContext, JobState } from "./machine.ts";
import { sortsBacklog, type ExecutionMode, type ResolvedJobOptions } from "../../runtime/contracts/job-options.ts";
import type { SubtaskHandle } from "./subtask-handle.ts";
import { describeRestartStrategy } from "./restart-strategy.ts";
import type { CheckpointStats } from "../checkpoint/coordinator.ts";
import { LAST_FAILURES_KEPT, LAST_FAILURE_CHARS, LAST_REBALANCES_KEPT, type LastStatus } from "./last-status.ts";
import type { SubtaskStatus } from "../subtask/subtask.ts";
import type { JobGraph } from "../../runtime/graph/job-graph.ts";

export interface JobFailure {
  readonly at: string;
  readonly subtask?: string;
  readonly error: string;
  readonly restarted: boolean;
}

export interface JobStatus {
  readonly job: string;
  readonly state: JobState;
  readonly attempt: string;
  readonly startedAt: string;
  readonly uptimeMs: number;
  readonly parallelism: number;
  /** Replicas of the job's streams and KV buckets (its `natsReplicas`). */
  readonly natsReplicas?: number;
  /**
   * The mode this launch runs in, as resolved from its sources: "automatic" only when it is not batch
   * (FLIP-327's mixed mode), so that a user of the default sees which one the job got.
   */
  readonly mode?: ExecutionMode;
  /** Whether keyed operators sort a backlog by key (mixed mode with checkpointIntervalDuringBacklogMs 0). */
  readonly backlogSorted?: boolean;
  /** Records the sources read since this job runner started, over all its deployments (replays after a restart count again). */
  readonly recordsIn: number;
  /** Records the sinks took, counted as recordsIn. */
  readonly recordsOut: number;
  readonly deadLetters: number;
  readonly failure?: string;
  readonly restarts: number;
  /** Of `restarts`, those not counted against the restart strategy (NATS outages, lost workers, a lost leader). */
  readonly restartsNotCounted?: number;
  /** The restart strategy, described ("exponential-delay (1000-60000 ms ×2, reset after 300000 ms)"). */
  readonly restartStrategy: string;
  /** While a restart waits for its delay: when it will happen. */
  readonly nextRestartAt?: string;
  readonly nextRestartDelayMs?: number;
  /** The last failures (at most MAX_FAILURES_KEPT). */
  readonly failures: readonly JobFailure[];
  readonly restoredFrom?: number;
  readonly checkpoints?: CheckpointStats;
  /** While the job's NATS connection is down (a running job goes on, README "Reliability"): since when. */
  readonly natsDisconnectedSince?: string;
  /** A worker the job's latest deployment left out (more workers than it places on): it runs nothing, on standby. */
  readonly spare?: boolean;
  readonly subtasks: readonly SubtaskStatus[];
  /** With workers (actors/worker/): every live worker, the epoch of the deployment, the last rebalances. */
  readonly workers?: readonly WorkerSummary[];
  readonly epoch?: number;
  /** With workers: the worker that answered (the leader, or a follower telling its own part). */
  readonly worker?: string;
  readonly rebalances?: ReadonlyArray<{ readonly at: string; readonly epoch: number; readonly cause: string }>;
  /** The deployed graph: its chains and the network edges between them (what a dashboard draws). */
  readonly graph?: JobGraphSummary;
}

/** Vertices are chains (subtask ids "<uid>#<index>"); `operators` names the chain's operators in order. */
export interface JobGraphSummary {
  readonly vertices: ReadonlyArray<{ readonly id: number; readonly uid: string; readonly name: string; readonly parallelism: number; readonly operators: readonly string[] }>;
  readonly edges: ReadonlyArray<{ readonly from: number; readonly to: number; readonly partitioning: string }>;
}

export function summarizeGraph(g: JobGraph): JobGraphSummary {
  return {
    vertices: g.vertices.map((v) => ({ id: v.id, uid: v.uid, name: v.name, parallelism: v.parallelism, operators: v.nodes.map((n) => n.name) })),
    edges: g.edges.map((e) => ({ from: e.fromVertex, to: e.toVertex, partitioning: e.partitioning.type })),
  };
}

/** One worker of a job, as `weir status` lists it (subtask ids as "<operator uid>#<index>"). */
export interface WorkerSummary {
  readonly id: string;
  readonly host: string;
  readonly pid: number;
  readonly leader: boolean;
  readonly subtasks: readonly string[];
  readonly heartbeatAgeMs: number;
  readonly lagMs: number;
}

export interface JobResult {
  readonly job: string;
  readonly state: "finished" | "stopped" | "cancelled";
  /** Stopped while it failed over (no final checkpoint): the failure it was recovering from. */
  readonly failure?: string;
  /** A worker of several that left the job (SIGTERM, say): the job goes on on the others. */
  readonly left?: boolean;
  /** A worker that did not lead the job: `status` counts its own subtasks only (the leader's, the whole job). */
  readonly share?: boolean;
  readonly durationMs: number;
  readonly status: JobStatus;
}

/** A daemon may restart for months: status keeps only the latest failures. */
export const MAX_FAILURES_KEPT = 20;

export class FailureLog {
  private readonly kept: JobFailure[] = [];
  add(failure: JobFailure): void {
    this.kept.push(failure);
    if (this.kept.length > MAX_FAILURES_KEPT) this.kept.splice(0, this.kept.length - MAX_FAILURES_KEPT);
  }
  list(): JobFailure[] { return [...this.kept]; }
}

/** The small summary (never the subtasks) kept in the jobs bucket; LastStatusWriter adds time and host. */
export function lastStatusOf(s: JobStatus): Omit<LastStatus, "at" | "host" | "pid"> {
  return {
    job: s.job, state: s.state, startedAt: s.startedAt,
    ...(s.failure !== undefined ? { failure: s.failure } : {}),
    restarts: s.restarts, restartStrategy: s.restartStrategy,
    ...(s.nextRestartAt !== undefined ? { nextRestartAt: s.nextRestartAt } : {}),
    recordsIn: s.recordsIn, recordsOut: s.recordsOut, deadLetters: s.deadLetters,
    ...(s.checkpoints?.lastCompleted ? { lastCheckpoint: s.checkpoints.lastCompleted.id } : {}),
    // What a new leader carries on (actors/worker/takeover-history.ts), bounded.
    ...(s.restartsNotCounted !== undefined ? { restartsNotCounted: s.restartsNotCounted } : {}),
    failures: s.failures.slice(-LAST_FAILURES_KEPT).map((f) => ({ ...f, error: f.error.slice(0, LAST_FAILURE_CHARS) })),
    ...(s.rebalances ? { rebalances: s.rebalances.slice(-LAST_REBALANCES_KEPT) } : {}),
    ...(s.worker !== undefined ? { worker: s.worker } : {}),
  };
}

export interface StatusParts {
  readonly job: ResolvedJobOptions;
  /** The default parallelism of the current deployment. */
  readonly parallelism: number;
  readonly state: JobState;
  readonly context: JobMachineContext;
  readonly attempt: string;
  readonly started: number;
  readonly subtasks: readonly SubtaskHandle[];
  readonly deadLetters: number;
  readonly failures: readonly JobFailure[];
  readonly restoredFrom?: number;
  readonly checkpoints?: CheckpointStats;
  readonly workers?: Record<string, unknown>;
  readonly graph?: JobGraph;
  /** While the job's NATS connection is down: since when (ms since the epoch). */
  readonly disconnectedSince?: number | undefined;
  /** What the deployments before the current one counted (a restart replaces the subtasks and their counters). */
  readonly carried?: RecordCounts;
}

export interface RecordCounts {
  readonly recordsIn: number;
  readonly recordsOut: number;
  /** Dead letters of subtasks on other workers (this process's publisher counts its own). */
  readonly remoteDeadLetters?: number;
}

/** Records in at the sources and out at the sinks of these subtasks (wherever a sink is chained), and other workers' dead letters, added to `base`. */
export function recordCounts(subtasks: ReadonlyArray<Pick<SubtaskHandle, "isSource" | "vertex" | "status" | "remote">>, base: RecordCounts = { recordsIn: 0, recordsOut: 0 }): RecordCounts {
  let recordsIn = base.recordsIn;
  let recordsOut = base.recordsOut;
  let remoteDeadLetters = base.remoteDeadLetters ?? 0;
  for (const s of subtasks) {
    if (s.isSource) recordsIn += s.status().recordsIn;
    // Every sink's records: one chained behind an operator that also sends downstream counts too.
    recordsOut += s.status().sinkRecords ?? 0;
    if (s.remote) remoteDeadLetters += s.status().deadLetters;
  }
  return { recordsIn, recordsOut, remoteDeadLetters };
}

/** The status's mode fields for the launch's options (their mode is the resolved one). */
export function modeOf(job: ResolvedJobOptions): Pick<JobStatus, "mode" | "backlogSorted"> {
  return { mode: job.mode, backlogSorted: job.mode !== "batch" && sortsBacklog(job) };
}

/** The status object of a job runner: records in at the sources, out at the sinks. */
export function jobStatusOf(p: StatusParts): JobStatus {
  const subtasks = p.subtasks.map((s) => s.status());
  const { remoteDeadLetters, ...counts } = recordCounts(p.subtasks, p.carried);
  const c = p.context;
  return {
    job: p.job.name,
    state: p.state,
    attempt: p.attempt,
    startedAt: new Date(p.started).toISOString(),
    uptimeMs: Date.now() - p.started,
    parallelism: p.parallelism,
    natsReplicas: p.job.natsReplicas,
    ...modeOf(p.job),
    ...counts,
    deadLetters: p.deadLetters + (remoteDeadLetters ?? 0),
    ...(c.failure ? { failure: c.failure } : {}),
    restarts: c.restarts,
    restartsNotCounted: c.outageRestarts,
    restartStrategy: describeRestartStrategy(p.job.restartStrategy),
    ...(c.nextRestartAt !== undefined && c.decision?.restart ? { nextRestartAt: new Date(c.nextRestartAt).toISOString(), nextRestartDelayMs: c.decision.delayMs } : {}),
    failures: [...p.failures],
    ...(p.restoredFrom !== undefined ? { restoredFrom: p.restoredFrom } : {}),
    ...(p.checkpoints ? { checkpoints: p.checkpoints } : {}),
    ...(p.disconnectedSince !== undefined ? { natsDisconnectedSince: new Date(p.disconnectedSince).toISOString() } : {}),
    subtasks,
    ...p.workers,
    ...(p.graph ? { graph: summarizeGraph(p.graph) } : {}),
  };
}
