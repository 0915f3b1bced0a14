// A subtask's part in a checkpoint: align barriers across its input channels (holding, never dropping,
// the frames of channels whose barrier came first), let async records drain, capture every operator's
// state, forward the barrier, then acknowledge once the captured state is durable.

import type { KeyedStateBackend, StateSnapshot } from "../../state/contracts.ts";
import type { SourceReader } from "../contracts/connectors.ts";
import type { MaybePromise, StreamOperator } from "../contracts/operators.ts";
import type { CheckpointBarrier } from "../transport/frames.ts";
import { messageOf } from "../core/errors.ts";
import { BarrierAligner } from "./barrier-aligner.ts";
import type { SubtaskSnapshot } from "./metadata.ts";

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
  /** The subtask sent end-of-input downstream: no barrier may follow it. */
  outputsEnded(): boolean;
  block(channel: number): void;
  unblock(channel: number): void;
  onPhase(event: { type: "BARRIER_RECEIVED"; checkpointId: number; aligned: boolean } | { type: "BARRIERS_ALIGNED" | "SNAPSHOT_DONE" | "CHECKPOINT_ABORTED"; checkpointId: number }): void;
  onAck(snapshot: SubtaskSnapshot, checkpointId: number): void;
  onDecline(checkpointId: number, reason: string): void;
  log(message: string): void;
}

export class SubtaskCheckpointer {
  private readonly aligner: BarrierAligner;
  private readonly barriers = new Map<number, CheckpointBarrier>();
  /** Keyed deltas not yet known to be materialized in KV: every checkpoint's metadata carries them all. */
  private unmaterialized: StateSnapshot[] = [];
  /** The newest checkpoint this subtask has started to snapshot: each is taken once, however asked. */
  private lastStarted = 0;

  constructor(private readonly p: CheckpointParticipant, channelCount: number) {
    this.aligner = new BarrierAligner(channelCount);
  }

  get blocked(): number[] { return this.aligner.blockedChannels; }

  /** A barrier arrived on an input channel (runs on the subtask's mailbox/run loop). */
  onBarrier(channel: number, barrier: CheckpointBarrier): MaybePromise {
    const first = this.aligner.aligning === undefined;
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
          break;
        case "aligned": {
          const started = this.aligner.alignmentStartedAt(action.checkpointId) ?? Date.now();
          if (first) this.p.onPhase({ type: "BARRIER_RECEIVED", checkpointId: action.checkpointId, aligned: true });
          else this.p.onPhase({ type: "BARRIERS_ALIGNED", checkpointId: action.checkpointId });
          return this.snapshot(this.barriers.get(action.checkpointId)!, Date.now() - started, action.release);
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
        this.p.onPhase({ type: "BARRIERS_ALIGNED", checkpointId: action.checkpointId });
        return this.snapshot(this.barriers.get(action.checkpointId)!, 0, action.release);
      }
    }
  }

  /**
   * A source subtask starts checkpoint `barrier` (from the coordinator, on its mailbox); a subtask whose
   * input has ended (waiting for its final checkpoint) snapshots its final state the same way.
   */
  trigger(barrier: CheckpointBarrier): MaybePromise {
    this.p.onPhase({ type: "BARRIER_RECEIVED", checkpointId: barrier.id, aligned: true });
    return this.snapshot(barrier, 0, []);
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
    if (id <= this.lastStarted) {
      // Asked twice (its barrier came while the coordinator asked it directly): the first one counts.
      for (const c of release) this.p.unblock(c);
      return;
    }
    this.lastStarted = id;
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
      // Awaited in acknowledge() only after `pending`: a failure before then (NATS gone) is not unhandled.
      keyedDelta?.catch(() => {});
      if (!this.p.outputsEnded()) this.p.emitBarrier(barrier);
      for (const c of release) this.p.unblock(c);
      void this.acknowledge(id, alignmentMs, operators, pending, keyedDelta);
    } catch (e) {
      for (const c of release) this.p.unblock(c);
      this.decline(id, e);
    }
  }

  private async acknowledge(id: number, alignmentMs: number, operators: Record<string, unknown>, pending: Array<Promise<void>>, keyedDelta: Promise<StateSnapshot> | undefined): Promise<void> {
    try {
      await Promise.all(pending);
      const delta = keyedDelta ? await keyedDelta : undefined;
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
      }, id);
    } catch (e) {
      this.decline(id, e);
    }
  }

  private decline(id: number, e: unknown): void {
    this.p.onPhase({ type: "CHECKPOINT_ABORTED", checkpointId: id });
    this.p.log(`checkpoint ${id} failed in ${this.p.vertexUid}#${this.p.index}: ${messageOf(e)}`);
    this.p.onDecline(id, messageOf(e));
  }
}
