// One deployment of a job's subtasks: where each runs (all in this process, or spread over the job's
// workers by the cluster's placement), and the phases every subtask goes through before records flow:
// subscribe everywhere, open (restore) downstream first, run the non-sources, then the sources. A
// deployment is one attempt (one epoch, with workers): its subjects are its own, so nothing of an
// earlier attempt reaches it.

import type { SubtaskDeps } from "../subtask/subtask.ts";
import { Subtask } from "../subtask/subtask.ts";
import type { SubtaskStatus } from "../subtask/status.ts";
import type { DeadLetterPublisher } from "../subtask/dead-letters.ts";
import type { JobGraph } from "../../runtime/graph/job-graph.ts";
import type { SubtaskSnapshot } from "../../runtime/checkpoint/metadata.ts";
import { ErrorCode, describedFailure } from "../../runtime/core/errors.ts";
import type { SubtaskHandle } from "./subtask-handle.ts";
import { flushConnection } from "../../runtime/nats/flush.ts";

/** What the job coordinator hears from its subtasks, wherever they run. */
export interface DeploymentEvents {
  onFinished(s: SubtaskHandle): void;
  onFailed(s: SubtaskHandle | undefined, error: unknown): void;
  onAck(snapshot: SubtaskSnapshot, checkpointId: number): void;
  onDecline(checkpointId: number, reason: string): void;
  onInputFinished(s: SubtaskHandle): void;
  /** A subtask did something after its snapshot of `afterCheckpoint`, which found it quiet (actors/subtask/activity.ts). */
  onActive(afterCheckpoint: number): void;
  onDirtyBudgetExceeded(): void;
  /** A worker's NATS connection is back (over workers): commands and reports of a checkpoint in flight may be lost. */
  onWorkerReconnected?(worker: string): void;
}

/** The subtasks of a deployment that run elsewhere, and how to drive them (actors/worker/cluster-deployment.ts). */
export interface RemotePart {
  readonly attempt: string;
  /** Ids of the subtasks this process runs itself. */
  readonly local: ReadonlySet<string>;
  readonly handles: readonly SubtaskHandle[];
  /** Every remote worker sets up and opens its subtasks; rejects naming the worker that could not. */
  open(): Promise<void>;
  run(sources: boolean): Promise<void>;
  /** Cancels the remote subtasks; resolves once each worker answered or is gone. */
  cancel(): Promise<void>;
  /** Moves every remote worker's manual clock on to `toMs`; rejects naming a worker that could not. */
  advanceClock(toMs: number): Promise<void>;
  close(): void;
}

export interface DeploymentOptions {
  readonly graph: JobGraph;
  /** Subtask deps except the attempt, the callbacks and the dead-letter view. */
  readonly deps: Omit<SubtaskDeps, "attempt" | "deadLetters" | "onFinished" | "onFailed" | "onAck" | "onDecline" | "onInputFinished" | "onActive" | "onDirtyBudgetExceeded">;
  readonly attempt: string;
  /** The run's lineage, in its subtasks' dead-letter ids (dead-letters.ts). */
  readonly lineage: string;
  readonly deadLetters: DeadLetterPublisher;
  readonly events: DeploymentEvents;
  readonly remote?: RemotePart;
}

export class Deployment {
  readonly subtasks: readonly SubtaskHandle[];
  private readonly local: Subtask[] = [];
  /** Its subtasks' final figures were told (close): told twice, /metrics would count them twice. */
  private retired = false;
  readonly attempt: string;

  constructor(private readonly o: DeploymentOptions) {
    this.attempt = o.remote?.attempt ?? o.attempt;
    const e = o.events;
    const deps: Omit<SubtaskDeps, "deadLetters"> = {
      ...o.deps,
      attempt: this.attempt,
      onFinished: (s) => e.onFinished(s),
      onFailed: (s, err) => e.onFailed(s, err),
      onAck: (_s, snapshot, id) => e.onAck(snapshot, id),
      onDecline: (_s, id, reason) => e.onDecline(id, reason),
      onInputFinished: (s) => e.onInputFinished(s),
      onActive: (_s, after) => e.onActive(after),
      onDirtyBudgetExceeded: () => e.onDirtyBudgetExceeded(),
    };
    for (const v of o.graph.vertices) {
      for (let i = 0; i < v.parallelism; i++) {
        if (o.remote && !o.remote.local.has(`${v.uid}#${i}`)) continue;
        this.local.push(new Subtask(v, i, { ...deps, deadLetters: o.deadLetters.forSubtask(o.lineage) }));
      }
    }
    this.subtasks = [...this.local, ...(o.remote?.handles ?? [])];
  }

  get localSubtasks(): readonly Subtask[] { return this.local; }

  /** Resolves once every subtask runs; `stillWanted` false (cancelled meanwhile) stops before running. */
  async start(stillWanted: () => boolean): Promise<boolean> {
    const { nc } = this.o.deps;
    for (const s of this.local) s.setup();
    await flushConnection(nc);
    await this.o.remote?.open();
    // All at once (none runs before every one is open): an open may wait out a JetStream leader election
    // (a server of a cluster lost: its requests time out and are retried), and one subtask after another
    // those waits added up. Each settles before the deployment fails, so cancelling finds none half-open.
    const opened = await Promise.allSettled([...this.local].reverse().map((s) => s.open()));
    const failed = opened.find((r): r is PromiseRejectedResult => r.status === "rejected");
    if (failed) throw failed.reason;
    if (!stillWanted()) return false;
    for (const s of this.local) if (!s.isSource) s.run();
    await this.o.remote?.run(false);
    await flushConnection(nc);
    for (const s of this.local) if (s.isSource) s.run();
    await this.o.remote?.run(true);
    return true;
  }

  /** Cancels every subtask; resolves once the local ones closed their operators and state and the remote ones answered. */
  async cancel(): Promise<void> {
    const closed = this.subtasks.map((s) => s.cancel());
    await this.o.remote?.cancel();
    await Promise.all(closed);
  }

  /** `retire`: told the final figures of the local subtasks, which a new deployment replaces (once: a deposed leader's may be closed twice). */
  close(retire?: (ended: readonly SubtaskStatus[]) => void): void {
    if (retire && !this.retired) {
      this.retired = true;
      retire(this.local.map((s) => s.status()));
    }
    for (const s of this.subtasks) if (!s.isTerminal) void s.cancel();
    this.o.remote?.close();
  }

  /** The remote workers' manual clocks moved on to `toMs` (this process's clock is the caller's). */
  advanceRemoteClocks(toMs: number): Promise<void> {
    return this.o.remote?.advanceClock(toMs) ?? Promise.resolve();
  }

  find(id: string): SubtaskHandle | undefined {
    return this.subtasks.find((x) => x.id === id || `${x.vertex.name}#${x.index}` === id || x.vertex.nodes.some((n) => `${n.name}#${x.index}` === id || `${n.uid}#${x.index}` === id));
  }
}

export function remoteFailure(worker: string, what: string, error: string, code?: string): Error {
  return describedFailure(`worker ${worker} could not ${what}: ${error}`, { error, code }, ErrorCode.Transport);
}

/** How many subtasks `graph` deploys. */
export function subtaskCount(graph: JobGraph): number {
  return graph.vertices.reduce((n, v) => n + v.parallelism, 0);
}
