// A subtask's part in a checkpoint: align barriers across its input channels (holding, never dropping,
// the frames of channels whose barrier came first), let async records drain, capture every operator's
// state, forward the barrier, then acknowledge once the captured state is durable. The subtask's
// lifecycle machine (actors/subtask/machine.ts) decides whether a snapshot is taken: this class reports
// each phase to it and captures only when the machine asks (its startSnapshot action), so a checkpoint is
// snapshotted once however it was asked for.

import type { KeyedStateBackend, StateSnapshot } from "../../state/contracts.ts";
import type { SourceReader } from "../../runtime/contracts/connectors.ts";
import type { MaybePromise, StreamOperator } from "../../runtime/contracts/operators.ts";
import type { CheckpointBarrier } from "../../runtime/transport/frames.ts";
import { messageOf } from "../../runtime/core/errors.ts";
import { BarrierAligner } from "../../runtime/checkpoint/barrier-aligner.ts";
import type { SubtaskSnapshot } from "../../runtime/checkpoint/metadata.ts";
import type { LogFn } from "../../runtime/core/log.ts";

export interface CheckpointParticipant {
  readonly vertexUid: string;
  readonly index: number;
  readonly parallelism: number;
  /** Non-source operators of the chain with their uids, head first. */
  readonly operators: ReadonlyArray<{ readonly uid: string; readonly operator: StreamOperator; readonly keyed: boolean }>;
  readonly source?: { readonly uid: string; readonly reader: () => SourceReader<unknown> | undefined };
  /** The keyed backend if one was created. */
  backend(): Promise<KeyedStateBackend> | undefined;
  emitBarrier(barrier: CheckpointBarrier): void;
  /** At a snapshot's capture: whether nothing happened since the last one (activity.ts). */
  captureActivity(checkpointId: number): boolean;
  /** Settles once the dead letters published so far are stored: the checkpoint covers their records. */
  deadLettersStored(): Promise<void>;
  /** The subtask sent end-of-input downstream: no barrier may follow it. */
  outputsEnded(): boolean;
  block(channel: number): void;
  unblock(channel: number): void;
  /** Reports a phase to the lifecycle machine; entering `snapshotting` it calls `startSnapshot` at once. */
  onPhase(event: CheckpointPhase): void;
  onAck(snapshot: SubtaskSnapshot, checkpointId: number): void;
  onDecline(checkpointId: number, reason: string): void;
  log: LogFn;
}

export type CheckpointPhase =
  | { type: "BARRIER_RECEIVED"; checkpointId: number; aligned: boolean }
  | { type: "BARRIERS_ALIGNED" | "SNAPSHOT_CAPTURED" | "SNAPSHOT_DONE" | "CHECKPOINT_ABORTED"; checkpointId: number };

/** A checkpoint aligned here, to be snapshotted if the lifecycle machine takes it. */
interface Aligned {
  readonly barrier: CheckpointBarrier;
  readonly alignmentMs: number;
  readonly release: readonly number[];
}

export class SubtaskCheckpointer {
  private readonly aligner: BarrierAligner;
  private readonly barriers = new Map<number, CheckpointBarrier>();
  /** Keyed deltas not yet known to be materialized in KV: every checkpoint's metadata carries them all. */
  private unmaterialized: StateSnapshot[] = [];
  /** Set while the lifecycle machine hears of an alignment; taken by startSnapshot. */
  private aligned: Aligned | undefined;
  /** The capture startSnapshot began, handed to the run loop that reported the alignment. */
  private capture: Promise<void> | undefined;

  constructor(private readonly p: CheckpointParticipant, channelCount: number) {
    this.aligner = new BarrierAligner(channelCount);
  }

  get blocked(): number[] { return this.aligner.blockedChannels; }

  /** A barrier arrived on an input channel (runs on the subtask's mailbox/run loop). */
  onBarrier(channel: number, barrier: CheckpointBarrier): MaybePromise {
    let first = this.aligner.aligning === undefined;
    this.barriers.set(barrier.id, barrier);
    for (const action of this.aligner.onBarrier(channel, barrier.id)) {
      switch (action.type) {
        case "block":
          if (first) this.p.onPhase({ type: "BARRIER_RECEIVED", checkpointId: barrier.id, aligned: false });
          this.p.block(action.channel);
          break;
        case "abandoned":
          for (const c of action.release) this.p.unblock(c);
          this.p.onPhase({ type: "CHECKPOINT_ABORTED", checkpointId: action.checkpointId });
          this.p.onDecline(action.checkpointId, `subtask ${this.p.vertexUid}#${this.p.index} saw barrier ${barrier.id} before ${action.checkpointId} aligned`);
          // The newer barrier starts an alignment of its own.
          first = true;
          break;
        case "aligned": {
          const started = this.aligner.alignmentStartedAt(action.checkpointId) ?? Date.now();
          const event: CheckpointPhase = first
            ? { type: "BARRIER_RECEIVED", checkpointId: action.checkpointId, aligned: true }
            : { type: "BARRIERS_ALIGNED", checkpointId: action.checkpointId };
          return this.begin(event, { barrier: this.barriers.get(action.checkpointId)!, alignmentMs: Date.now() - started, release: action.release });
        }
        case "ignore":
          break;
      }
    }
  }

  /** An input channel ended: it may complete an alignment. */
  onEndOfInput(channel: number): MaybePromise {
    for (const action of this.aligner.onEndOfInput(channel)) {
      if (action.type === "aligned") {
        return this.begin({ type: "BARRIERS_ALIGNED", checkpointId: action.checkpointId }, { barrier: this.barriers.get(action.checkpointId)!, alignmentMs: 0, release: action.release });
      }
    }
  }

  /**
   * A source subtask starts checkpoint `barrier` (from the coordinator, on its mailbox); a subtask whose
   * input has ended (waiting for its final checkpoint) snapshots its final state the same way.
   */
  trigger(barrier: CheckpointBarrier): MaybePromise {
    return this.begin({ type: "BARRIER_RECEIVED", checkpointId: barrier.id, aligned: true }, { barrier, alignmentMs: 0, release: [] });
  }

  /** The lifecycle machine entered `snapshotting` for `checkpointId` (its startSnapshot action). */
  startSnapshot(checkpointId: number): void {
    const a = this.aligned;
    if (!a || a.barrier.id !== checkpointId) return;
    this.aligned = undefined;
    this.capture = this.snapshot(a.barrier, a.alignmentMs, a.release);
  }

  /** Reports an alignment; returns the capture if the machine started one (else it was taken already). */
  private begin(event: CheckpointPhase, aligned: Aligned): MaybePromise {
    this.aligned = aligned;
    this.p.onPhase(event);
    const notTaken = this.aligned;
    this.aligned = undefined;
    if (notTaken) {
      // Asked twice (its barrier came while the coordinator asked it directly): the first one counts.
      for (const c of notTaken.release) this.p.unblock(c);
      return;
    }
    const capture = this.capture;
    this.capture = undefined;
    return capture;
  }

  /**
   * The checkpoint is committed: state deltas may be materialized, sinks may commit. The materialization
   * (KV writes of every changed entry) runs in the background, off the mailbox, so processing goes on
   * meanwhile; `onBackgroundFailure` fails the subtask if it fails.
   */
  async notifyComplete(checkpointId: number, onBackgroundFailure: (e: unknown) => void): Promise<void> {
    const backend = await this.p.backend();
    if (backend?.notifyCheckpointComplete) {
      backend.notifyCheckpointComplete(checkpointId).then((through) => {
        // Materialized through `through`: later metadata need not carry those deltas.
        const held = typeof through === "number" ? through : checkpointId;
        this.unmaterialized = this.unmaterialized.filter((s) => s.checkpointId > held);
      }, onBackgroundFailure);
    }
    for (const { operator } of this.p.operators) await operator.notifyCheckpointComplete?.(checkpointId);
    await this.p.source?.reader()?.notifyCheckpointComplete?.(checkpointId);
  }

  async notifyAborted(checkpointId: number): Promise<void> {
    const backend = await this.p.backend();
    backend?.notifyCheckpointAborted?.(checkpointId);
  }

  /** Restored from a checkpoint: its deltas stay needed until the next checkpoint is materialized. */
  restoredFrom(snapshots: readonly StateSnapshot[]): void {
    this.unmaterialized = [...snapshots];
  }

  /**
   * Drains, captures and forwards the barrier; resolves then, so the subtask resumes processing while the
   * captured state is made durable in the background and acknowledged.
   */
  private async snapshot(barrier: CheckpointBarrier, alignmentMs: number, release: readonly number[]): Promise<void> {
    const id = barrier.id;
    try {
      // Records in flight belong before the barrier: let them finish (FLIP-425 drains at a barrier).
      for (const { operator } of this.p.operators) {
        const p = operator.prepareSnapshot?.();
        if (p) await p;
      }
      const backendPromise = this.p.backend();
      const backend = backendPromise ? await backendPromise : undefined;
      // Capture synchronously from here on, so nothing processed after the barrier leaks into it.
      const operators: Record<string, unknown> = {};
      const pending: Array<Promise<void>> = [];
      const reader = this.p.source?.reader();
      if (this.p.source && reader?.snapshotState) operators[this.p.source.uid] = reader.snapshotState(id);
      for (const { uid, operator } of this.p.operators) {
        if (!operator.snapshotState) continue;
        const s = operator.snapshotState(id);
        if (s instanceof Promise) pending.push(s.then((v) => { operators[uid] = v; }));
        else if (s !== undefined) operators[uid] = s;
      }
      const keyedDelta = backend?.snapshot ? backend.snapshot(id) : undefined;
      const quiet = this.p.captureActivity(id);
      // Awaited in acknowledge() only after `pending`: a failure before then (NATS gone) is not unhandled.
      keyedDelta?.catch(() => {});
      if (!this.p.outputsEnded()) this.p.emitBarrier(barrier);
      for (const c of release) this.p.unblock(c);
      this.p.onPhase({ type: "SNAPSHOT_CAPTURED", checkpointId: id });
      void this.acknowledge(id, alignmentMs, operators, pending, keyedDelta, quiet);
    } catch (e) {
      for (const c of release) this.p.unblock(c);
      this.decline(id, e);
    }
  }

  private async acknowledge(id: number, alignmentMs: number, operators: Record<string, unknown>, pending: Array<Promise<void>>, keyedDelta: Promise<StateSnapshot> | undefined, quiet: boolean): Promise<void> {
    try {
      await Promise.all(pending);
      const delta = keyedDelta ? await keyedDelta : undefined;
      // After `pending`: a sink's pre-commit flush may reject records too.
      await this.p.deadLettersStored();
      if (delta) this.unmaterialized.push(delta);
      const keyedOps = this.p.operators.filter((o) => o.keyed).map((o) => o.uid);
      this.p.onPhase({ type: "SNAPSHOT_DONE", checkpointId: id });
      this.p.onAck({
        vertexUid: this.p.vertexUid,
        index: this.p.index,
        parallelism: this.p.parallelism,
        operators,
        ...(delta && keyedOps.length ? { keyed: { operators: keyedOps, snapshots: [...this.unmaterialized] } } : {}),
        ackedAtMs: Date.now(),
        alignmentMs,
        stateChanged: { entries: delta?.entries ?? 0, bytes: delta?.bytes ?? 0 },
        ...(quiet ? { quiet } : {}),
      }, id);
    } catch (e) {
      this.decline(id, e);
    }
  }

  private decline(id: number, e: unknown): void {
    this.p.onPhase({ type: "CHECKPOINT_ABORTED", checkpointId: id });
    const subtask = `${this.p.vertexUid}#${this.p.index}`;
    this.p.log(`checkpoint ${id} failed in ${subtask}: ${messageOf(e)}`, { level: "warn", checkpoint: id, subtask, err: e });
    this.p.onDecline(id, messageOf(e));
  }
}
