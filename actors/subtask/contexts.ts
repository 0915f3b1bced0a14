// What a subtask hands its operators and its source: their runtime context (names, connection, clock,
// state backend, mailbox) and the keyed state backend, opened once on first use and restored to the
// checkpoint the run starts from.

import type { NatsConnection } from "@nats-io/transport-node";
import type { KeyedStateBackend } from "../../state/contracts.ts";
import type { KeyGroupRange } from "../../state/key-groups.ts";
import type { DeadLetters } from "../../runtime/contracts/connectors.ts";
import type { ResolvedJobOptions } from "../../runtime/contracts/job-options.ts";
import type { JobGraph, JobVertex } from "../../runtime/graph/job-graph.ts";
import { type PhysicalNode, type SourceNode, isKeyedOperator } from "../../runtime/graph/stream-graph.ts";
import type { JobNames } from "../../runtime/core/names.ts";
import type { MaybePromise, OperatorContext, Output } from "../../runtime/contracts/operators.ts";
import type { RestoreBundle } from "../../runtime/checkpoint/restore.ts";
import type { SubtaskCheckpointer } from "./checkpointer.ts";
import type { MailAction } from "../../runtime/transport/input-gate.ts";
import type { Clock } from "../../runtime/core/clock.ts";
import type { LogFn } from "../../runtime/core/log.ts";
import { ErrorCode, WeirError } from "../../runtime/core/errors.ts";

/** What a subtask asks of the job's state backend factory. */
export interface StateBackendRequest {
  readonly keyGroupRange: KeyGroupRange;
  /** Names the subtask's changelog subjects: the same in every run and at every parallelism. */
  readonly vertexUid: string;
  /** The backend's dirty buffer is over budget: a checkpoint would let it write (checkpoint mode). */
  readonly onDirtyBudgetExceeded: () => void;
  /** Whether KV state writes may go out now (a worker's fence, actors/worker/state-write-fence.ts); none: always. */
  readonly mayWrite?: () => boolean;
}

export interface ContextDeps {
  readonly nc: NatsConnection;
  readonly names: JobNames;
  readonly attempt: string;
  readonly job: ResolvedJobOptions;
  readonly graph: JobGraph;
  readonly clock: Clock;
  readonly deadLetters: DeadLetters;
  readonly createStateBackend: (request: StateBackendRequest) => Promise<KeyedStateBackend>;
  readonly log: LogFn;
  readonly restore?: RestoreBundle;
  readonly onDirtyBudgetExceeded?: () => void;
}

/** The subtask's side of its operators' contexts. */
export interface ContextHost {
  readonly vertex: JobVertex;
  readonly index: number;
  readonly keyGroupRange: KeyGroupRange;
  currentWatermark(): number;
  outputCapacity(): MaybePromise;
  /** `housekeeping`: mail that changes nothing unless it emits (see activity.ts). */
  enqueue(action: MailAction, housekeeping?: boolean): void;
  fail(error: unknown): void;
}

export class SubtaskContexts {
  private backend: Promise<KeyedStateBackend> | undefined;

  constructor(private readonly deps: ContextDeps, private readonly host: ContextHost) {}

  /** The keyed backend if an operator asked for it. */
  openedBackend(): Promise<KeyedStateBackend> | undefined { return this.backend; }

  connector(node: PhysicalNode | SourceNode) {
    return {
      jobName: this.deps.job.name,
      names: this.deps.names,
      operatorUid: node.uid,
      operatorName: node.name,
      subtaskIndex: this.host.index,
      parallelism: this.host.vertex.parallelism,
      attempt: this.deps.attempt,
      nc: this.deps.nc,
      deadLetters: this.deps.deadLetters,
      log: this.deps.log,
    };
  }

  operator(node: PhysicalNode, output: Output, checkpointer: () => SubtaskCheckpointer): OperatorContext {
    const { deps, host } = this;
    return {
      runtime: {
        jobName: deps.job.name,
        operatorName: node.name,
        operatorUid: node.uid,
        subtaskIndex: host.index,
        parallelism: host.vertex.parallelism,
        maxParallelism: deps.graph.maxParallelism,
        attempt: deps.attempt,
      },
      output,
      job: deps.job,
      nc: deps.nc,
      names: deps.names,
      deadLetters: deps.deadLetters,
      keyGroupRange: host.keyGroupRange,
      clock: deps.clock,
      stateBackend: () => (this.backend ??= this.openBackend(checkpointer())),
      restoredState: () => {
        const parts = deps.restore?.statesOf(node.uid);
        return parts && parts.length ? parts : undefined;
      },
      checkpointing: deps.job.checkpointIntervalMs > 0,
      restoring: deps.restore !== undefined,
      currentWatermark: () => host.currentWatermark(),
      outputCapacity: () => host.outputCapacity(),
      enqueue: (action: MailAction, housekeeping?: boolean) => host.enqueue(action, housekeeping),
      fail: (e: unknown) => host.fail(e),
      log: deps.log,
    };
  }

  /** The keyed backend, restored to the checkpoint this run starts from. */
  private async openBackend(checkpointer: SubtaskCheckpointer): Promise<KeyedStateBackend> {
    const { deps, host } = this;
    const backend = await deps.createStateBackend({
      keyGroupRange: host.keyGroupRange,
      vertexUid: host.vertex.uid,
      onDirtyBudgetExceeded: () => deps.onDirtyBudgetExceeded?.(),
    });
    const keyedUids = host.vertex.nodes.filter(isKeyedOperator).map((n) => n.uid);
    const snapshots = deps.restore?.keyedSnapshotsOf(keyedUids) ?? [];
    if (snapshots.length > 0) {
      if (!backend.restore) throw new WeirError(ErrorCode.Restore, `the ${backend.kind} state backend cannot restore checkpoint ${deps.restore!.id}`);
      await backend.restore(snapshots);
      checkpointer.restoredFrom(snapshots);
    }
    return backend;
  }

  /** keepState false: buffered state changes are dropped, not written (the restart restores a checkpoint). */
  async closeBackend(options: { keepState: boolean }): Promise<void> {
    const backend = this.backend ? await this.backend : undefined;
    if (!backend) return;
    if (options.keepState || !backend.dispose) await backend.close();
    else backend.dispose();
  }
}
