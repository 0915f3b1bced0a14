// A subtask running on another worker, as the leader's job coordinator sees it: commands go to that
// worker over NATS (fire and forget: a lost one costs a checkpoint timeout or a restart, never a wrong
// result), and what the coordinator asks of its state (terminal, waiting for the final checkpoint,
// reading a backlog, its status) mirrors the worker's reports.

import type { JobVertex } from "../../runtime/graph/job-graph.ts";
import type { CheckpointBarrier } from "../../runtime/transport/frames.ts";
import type { SubtaskHandle } from "../job/subtask-handle.ts";
import type { SubtaskStatus } from "../subtask/status.ts";
import type { WorkerCommand } from "./protocol.ts";

/**
 * One worker of a deployment, as the leader reaches it. Notifications, stop and release concern every
 * subtask the worker runs: the coordinator tells each subtask, the worker is told once.
 */
export class RemoteWorker {
  private lastComplete = 0;
  private lastAbort = 0;
  private stopped = false;
  private released = false;
  private regranting = false;
  /** The trigger being gathered: the coordinator triggers its sources one after another in one go. */
  private gathering: Extract<WorkerCommand, { kind: "trigger" }> | undefined;

  constructor(readonly id: string, readonly epoch: number, private readonly sendNow: (command: WorkerCommand) => void) {}

  /** One command per worker and checkpoint: the subtasks triggered in the same tick go together. */
  trigger(subtask: string, barrier: CheckpointBarrier, pause: boolean): void {
    const g = this.gathering;
    if (g !== undefined && g.barrier.id === barrier.id && g.pause === pause) {
      g.subtasks.push(subtask);
      return;
    }
    this.sendGathered();
    this.gathering = { kind: "trigger", epoch: this.epoch, subtasks: [subtask], barrier: { id: barrier.id, timestamp: barrier.timestamp, kind: barrier.kind }, pause };
    queueMicrotask(() => this.sendGathered());
  }

  private sendGathered(): void {
    const g = this.gathering;
    this.gathering = undefined;
    if (g !== undefined) this.sendNow(g);
  }

  /** Commands keep their order: a trigger being gathered goes first. */
  private send(command: WorkerCommand): void {
    this.sendGathered();
    this.sendNow(command);
  }

  complete(checkpointId: number): void {
    if (checkpointId <= this.lastComplete) return;
    this.lastComplete = checkpointId;
    this.send({ kind: "complete", epoch: this.epoch, checkpointId });
  }
  abort(checkpointId: number): void {
    if (checkpointId <= this.lastAbort) return;
    this.lastAbort = checkpointId;
    this.send({ kind: "abort", epoch: this.epoch, checkpointId });
  }
  stopSources(): void {
    if (this.stopped) return;
    this.stopped = true;
    this.send({ kind: "stop-sources", epoch: this.epoch });
  }
  release(): void {
    if (this.released) return;
    this.released = true;
    this.send({ kind: "release", epoch: this.epoch });
  }
  fail(subtask: string, reason: string): void { this.send({ kind: "fail", epoch: this.epoch, subtask, reason }); }

  /** The leader's connection is back: the worker grants and probes again, and hears what it may have missed. Once per worker. */
  regrant(): void {
    if (this.regranting) return;
    this.regranting = true;
    queueMicrotask(() => {
      this.regranting = false;
      this.send({ kind: "regrant", epoch: this.epoch });
      this.resend();
    });
  }

  /** Commands the worker must not miss, sent again after a disconnect (it ignores a completion it had). */
  resend(): void {
    if (this.lastComplete > 0) this.send({ kind: "complete", epoch: this.epoch, checkpointId: this.lastComplete });
    if (this.stopped) this.send({ kind: "stop-sources", epoch: this.epoch });
    if (this.released) this.send({ kind: "release", epoch: this.epoch });
  }
}

export class RemoteSubtask implements SubtaskHandle {
  readonly id: string;
  readonly remote = true;
  private terminal = false;
  private inputFinished = false;
  private last: SubtaskStatus;

  constructor(readonly vertex: JobVertex, readonly index: number, readonly worker: RemoteWorker) {
    this.id = `${vertex.uid}#${index}`;
    this.last = {
      id: this.id, vertex: vertex.id, name: vertex.name, index, state: "deploying", recordsIn: 0, recordsOut: 0, watermark: null,
      backpressuredMs: 0, queuedFrames: 0, pendingFrames: 0, deadLetters: 0, isBacklog: false, operators: {},
    };
  }

  get isSource(): boolean { return this.vertex.nodes[0]!.kind === "source"; }
  get isTerminal(): boolean { return this.terminal; }
  get isWaitingForFinalCheckpoint(): boolean { return this.inputFinished && !this.terminal; }
  get sourceIsBacklog(): boolean { return this.last.isBacklog; }

  triggerCheckpoint(barrier: CheckpointBarrier, pauseAfter = false): void { this.worker.trigger(this.id, barrier, pauseAfter); }
  notifyCheckpointComplete(id: number): void { this.worker.complete(id); }
  notifyCheckpointAborted(id: number): void { this.worker.abort(id); }
  requestStop(): void { if (this.isSource) this.worker.stopSources(); }
  release(): void { this.worker.release(); }
  /** The deployment cancels the worker's subtasks with one request (actors/worker/deployment.ts). */
  cancel(): Promise<void> { this.terminal = true; return Promise.resolve(); }
  onReconnected(): void { this.worker.regrant(); }
  injectFailure(reason: string): void { this.worker.fail(this.id, reason); }
  status(): SubtaskStatus { return { ...this.last, worker: this.worker.id } as SubtaskStatus; }

  // ---- the worker's reports
  markInputFinished(): void { this.inputFinished = true; }
  markTerminal(): void { this.terminal = true; }
  updateStatus(status: SubtaskStatus): void {
    this.last = status;
  }
}
