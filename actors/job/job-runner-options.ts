// What a job runner is given: clocks, logging, the state backend factory and, when the job is spread over
// workers, the cluster's hooks (actors/worker/leader-side.ts provides them).

import type { KeyedStateBackend } from "../../state/contracts.ts";
import type { Clock } from "../../runtime/core/clock.ts";
import type { LogFn } from "../../runtime/core/log.ts";
import type { JobGraph } from "../../runtime/graph/job-graph.ts";
import type { ResolvedJobOptions } from "../../runtime/contracts/job-options.ts";
import type { StateBackendRequest } from "../subtask/subtask.ts";
import type { SubtaskStatus } from "../subtask/status.ts";
import type { DeploymentEvents, RemotePart } from "./deployment.ts";

export interface JobRunnerOptions {
  /** Processing time (timers of user functions); a test may move it by hand. */
  readonly clock?: Clock;
  /**
   * The job's own delays: restart delays, checkpoint timeouts and intervals, reconnect polls (default:
   * real time). Apart from `clock`, so a test moving processing time by hand does not also hold up restarts.
   */
  readonly controlClock?: Clock;
  readonly log?: LogFn;
  readonly createStateBackend: (request: StateBackendRequest) => Promise<KeyedStateBackend>;
  /** Deletes the job's keyed state (for `--restore none`). */
  readonly resetState?: () => Promise<void>;
  /** The job's graph at another default parallelism (`parallelism: "auto"`). */
  readonly graphFor?: (parallelism: number) => JobGraph;
  /** The final figures of this process's subtasks as a new deployment replaces them (weir run's /metrics counts on from them). */
  readonly onSubtasksRetired?: (ended: readonly SubtaskStatus[]) => void;
  /** With several workers: places each deployment over them (actors/worker/). Absent: all subtasks here. */
  readonly cluster?: ClusterHooks;
}

/** What the job coordinator asks of the cluster when it leads a job spread over workers. */
export interface ClusterHooks {
  /** Places the subtasks for a new deployment (a new epoch, recorded in the job log) and reaches the remote ones. */
  deploy(request: DeployRequest): Promise<RemotePart>;
  /** Records a checkpoint's commit as leader (fenced): rejects once another worker leads. */
  fenceCommit(checkpointId: number): Promise<void>;
  /** With `parallelism: "auto"`: the parallelism of the next deployment (from the workers there are). */
  parallelism(): number | undefined;
  /** What the status adds about the workers (`workers`, `epoch`, rebalances). */
  statusOfWorkers(): Record<string, unknown>;
  /**
   * What this leader restores, given the `restore` the run was started with: that, for a run's first
   * leader; a worker taking over a run already deployed continues it instead (actors/worker/job-worker.ts),
   * and its lineage (when its job log recorded one).
   */
  restoreOnLeading(requested: ResolvedJobOptions["restore"]): Promise<{ restore: ResolvedJobOptions["restore"]; lineage?: string }>;
}

/** A deployment over workers: what each worker's subtasks restore, and the lineage of the run (its dead letters' ids). */
export interface DeployRequest {
  readonly graph: JobGraph;
  readonly events: DeploymentEvents;
  readonly restoreId: number | undefined;
  readonly lineage: string;
  readonly parallelism?: number;
}
