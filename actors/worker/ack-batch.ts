// A worker's checkpoint acknowledgements, one message per checkpoint instead of one per subtask: the
// acknowledgements were most of the control plane's bytes (`npm run bench workers`). A checkpoint
// completes only once every subtask acknowledged it, so holding a worker's early acknowledgements until
// its last subtask's costs the checkpoint nothing: the batch goes out the moment the last one comes. It
// also goes out when the subtasks expected change (one finished or declined), and at the latest
// `maxWaitMs` after its first acknowledgement, so a subtask that never acknowledges (its barrier held
// up far upstream) delays the others by no more than that.

import type { SubtaskSnapshot } from "../../runtime/checkpoint/metadata.ts";

export interface AckBatchTimers {
  setTimeout(f: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}

interface Pending {
  readonly snapshots: SubtaskSnapshot[];
  /** Acknowledgements of the checkpoint already sent (by an earlier flush whose wait ran out). */
  readonly sent: number;
  readonly timer: unknown;
}

export class AckBatch {
  private readonly pending = new Map<number, Pending>();
  /** Checkpoints sent in part: how many acknowledgements went (only the newest kept). */
  private partial: { checkpointId: number; sent: number } | undefined;

  /**
   * `expected`: how many of the worker's subtasks acknowledge a checkpoint now (those not terminal).
   * `send`: one message with the snapshots of `checkpointId`.
   */
  constructor(
    private readonly expected: () => number,
    private readonly send: (checkpointId: number, snapshots: readonly SubtaskSnapshot[]) => void,
    private readonly maxWaitMs = 100,
    private readonly timers: AckBatchTimers = { setTimeout: (f, ms) => setTimeout(f, ms), clearTimeout: (h) => clearTimeout(h as NodeJS.Timeout) },
  ) {}

  /** A subtask acknowledged `checkpointId`. */
  add(checkpointId: number, snapshot: SubtaskSnapshot): void {
    let p = this.pending.get(checkpointId);
    if (p === undefined) {
      const sent = this.partial?.checkpointId === checkpointId ? this.partial.sent : 0;
      p = { snapshots: [], sent, timer: this.timers.setTimeout(() => this.flush(checkpointId), this.maxWaitMs) };
      this.pending.set(checkpointId, p);
    }
    p.snapshots.push(snapshot);
    if (p.sent + p.snapshots.length >= this.expected()) this.flush(checkpointId);
  }

  /** The subtasks expected changed (one finished, failed or declined): batches now complete go out. */
  recheck(): void {
    const n = this.expected();
    for (const [id, p] of [...this.pending]) if (p.sent + p.snapshots.length >= n) this.flush(id);
  }

  /** Sends what `checkpointId` has so far (a decline of it follows; or the wait ran out). */
  flush(checkpointId: number): void {
    const p = this.pending.get(checkpointId);
    if (p === undefined) return;
    this.pending.delete(checkpointId);
    this.timers.clearTimeout(p.timer);
    const sent = p.sent + p.snapshots.length;
    if (sent < this.expected()) this.partial = { checkpointId, sent };
    else if (this.partial?.checkpointId === checkpointId) this.partial = undefined;
    this.send(checkpointId, p.snapshots);
  }

  /** A new deployment: acknowledgements of the old one are of no use. */
  clear(): void {
    for (const p of this.pending.values()) this.timers.clearTimeout(p.timer);
    this.pending.clear();
    this.partial = undefined;
  }
}
