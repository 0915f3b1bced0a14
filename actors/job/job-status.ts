// What a job reports about itself: the status object (`weir status`, JobClient.status(), the control
// protocol's status reply), the result it ends with, its bounded list of failures, and the small summary
// kept as its last known status.

import type { JobState } from "./machine.ts";
import type { CheckpointStats } from "../checkpoint/coordinator.ts";
import type { LastStatus } from "./last-status.ts";
import type { SubtaskStatus } from "../subtask/subtask.ts";

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
  readonly recordsIn: number;
  readonly recordsOut: number;
  readonly deadLetters: number;
  readonly failure?: string;
  readonly restarts: number;
  /** The restart strategy, described ("exponential-delay (1000-60000 ms ×2, reset after 300000 ms)"). */
  readonly restartStrategy: string;
  /** While a restart waits for its delay: when it will happen. */
  readonly nextRestartAt?: string;
  readonly nextRestartDelayMs?: number;
  /** The last failures (at most MAX_FAILURES_KEPT). */
  readonly failures: readonly JobFailure[];
  readonly restoredFrom?: number;
  readonly checkpoints?: CheckpointStats;
  readonly subtasks: readonly SubtaskStatus[];
}

export interface JobResult {
  readonly job: string;
  readonly state: "finished" | "stopped" | "cancelled";
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
  };
}
