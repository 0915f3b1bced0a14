// What the job coordinator needs of a subtask, wherever it runs: a Subtask in this process
// (actors/subtask/subtask.ts) or one on another worker, reached over NATS (actors/worker/remote-subtask.ts).

import type { CheckpointTarget } from "../checkpoint/coordinator.ts";
import type { JobVertex } from "../../runtime/graph/job-graph.ts";
import type { SubtaskStatus } from "../subtask/status.ts";

export interface SubtaskHandle extends CheckpointTarget {
  readonly vertex: JobVertex;
  readonly index: number;
  readonly isTerminal: boolean;
  readonly sourceIsBacklog: boolean;
  /** Runs on another worker: its dead letters were counted by that worker's publisher, not this one's. */
  readonly remote?: boolean;
  requestStop(): void;
  release(): void;
  /** Resolves once the subtask's operators and state are closed (a remote one: its worker answers the deployment). */
  cancel(): Promise<void>;
  onReconnected(): void;
  injectFailure(reason: string): void;
  status(): SubtaskStatus;
}
