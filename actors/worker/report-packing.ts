// A follower's reports packed against earlier ones the leader holds (runtime/cluster/packed-json.ts):
// consecutive status reports, and acknowledgements of consecutive checkpoints, differ in a few numbers,
// and packed against the one before they take about half the bytes (the control plane's bytes are a
// measured goal: `npm run bench workers`).
//
// - An acknowledgement is packed against this worker's acknowledgement of the last checkpoint it knows
//   completed: the leader certainly holds that one, as it completed the checkpoint only after reading
//   it. After an abort (the leader may have missed one) and in a new deployment the next goes alone.
// - A status report is packed against the last one sent alone, and every FULL_STATUS_EVERY-th goes alone:
//   a lost report costs the leader at most that many seconds of status, never a wrong one.

import { encodeReport, encodeReportAgainst, type WorkerReport } from "./protocol.ts";

/** Status reports (one a second) between two sent alone. */
const FULL_STATUS_EVERY = 5;
/** Acknowledgements kept as candidate references, by checkpoint: more than the checkpoints in flight at once. */
const ACKS_KEPT = 8;

export class ReportPacker {
  private readonly acks = new Map<number, Uint8Array>();
  private ackReference: Uint8Array | undefined;
  private statusReference: Uint8Array | undefined;
  private statusesSinceAlone = 0;

  pack(r: WorkerReport): Uint8Array {
    if (r.kind === "ack") {
      const p = encodeReportAgainst(r, this.ackReference);
      this.acks.set(r.checkpointId, p.text);
      if (this.acks.size > ACKS_KEPT) this.acks.delete(this.acks.keys().next().value!);
      return p.data;
    }
    if (r.kind === "status") {
      const alone = this.statusReference === undefined || ++this.statusesSinceAlone >= FULL_STATUS_EVERY;
      const p = encodeReportAgainst(r, alone ? undefined : this.statusReference);
      if (alone) {
        this.statusReference = p.text;
        this.statusesSinceAlone = 0;
      }
      return p.data;
    }
    return encodeReport(r);
  }

  /** The leader said checkpoint `id` completed: it read this worker's acknowledgement of it. */
  completed(id: number): void {
    const text = this.acks.get(id);
    if (text !== undefined) this.ackReference = text;
    for (const k of [...this.acks.keys()]) if (k <= id) this.acks.delete(k);
  }

  /** A checkpoint was aborted: the leader may have missed an acknowledgement (or could not unpack one). */
  aborted(): void { this.ackReference = undefined; }

  /** A new deployment (perhaps of a new leader), or back after a disconnect (reports may be lost): everything goes alone first. */
  reset(): void {
    this.acks.clear();
    this.ackReference = undefined;
    this.statusReference = undefined;
    this.statusesSinceAlone = 0;
  }
}
