// A watermark per source split (Flink's WatermarkOutputMultiplexer, FLIP-27 per-split watermarks): each
// split's watermark trails the largest timestamp of its own records, and the subtask's is the lowest over
// the splits that still count. A split that has not delivered a record holds it back (its records may be
// the oldest) unless it is idle (no record for `idlenessMs`, with withIdleness) or ended.

import { MIN_WATERMARK } from "../transport/frames.ts";
import type { SourceSplits } from "../contracts/connectors.ts";

export class SplitWatermarks {
  private readonly maxTs: number[];
  private readonly lastRecordAt: number[];
  /** Splits seen ended at the last noteEnded(): between batches, once their last records went through. */
  private readonly ended: boolean[];

  constructor(
    private readonly splits: SourceSplits,
    private readonly outOfOrdernessMs: number,
    private readonly idlenessMs: number | undefined,
    now: number,
  ) {
    this.maxTs = new Array<number>(splits.count).fill(MIN_WATERMARK);
    this.lastRecordAt = new Array<number>(splits.count).fill(now);
    this.ended = new Array<boolean>(splits.count).fill(false);
  }

  /**
   * Takes note of the splits that ended. Only between batches: a split ends when the reader takes its
   * last message, before the records of that batch have gone through; ended earlier, the split would let
   * the watermark pass its own records still to come in the batch.
   */
  noteEnded(): void {
    for (let i = 0; i < this.ended.length; i++) if (!this.ended[i] && this.splits.ended(i)) this.ended[i] = true;
  }

  /** A record of `split` with event time `ts`, at `now`. */
  record(split: number, ts: number, now: number): void {
    if (ts > this.maxTs[split]!) this.maxTs[split] = ts;
    this.lastRecordAt[split] = now;
  }

  /**
   * The lowest watermark over the splits that count at `now` (MIN_WATERMARK while one of them has no
   * record yet), and whether none counts (every split idle or ended: the output goes idle, after the
   * lowest watermark its idle splits with records reached, which is what they had before going quiet).
   */
  current(now: number): { readonly watermark: number; readonly idle: boolean } {
    // No split to read (a JetStream source subtask given no subject): idle from the start, as Flink's
    // source operator with no split assigned, instead of holding every window back.
    if (this.maxTs.length === 0) return { watermark: MIN_WATERMARK, idle: true };
    let active = Number.POSITIVE_INFINITY;
    let quiet = Number.POSITIVE_INFINITY;
    let activeCount = 0;
    let endedCount = 0;
    for (let i = 0; i < this.maxTs.length; i++) {
      if (this.ended[i]) { endedCount++; continue; }
      const max = this.maxTs[i]!;
      const wm = max === MIN_WATERMARK ? MIN_WATERMARK : max - this.outOfOrdernessMs - 1;
      if (this.idlenessMs !== undefined && now - this.lastRecordAt[i]! >= this.idlenessMs) {
        if (max !== MIN_WATERMARK && wm < quiet) quiet = wm;
      } else {
        activeCount++;
        if (wm < active) active = wm;
      }
    }
    if (activeCount > 0) return { watermark: active, idle: false };
    // Every split ended: what they reached (the source's end then brings the final watermark).
    if (endedCount === this.maxTs.length) return { watermark: this.highest(), idle: false };
    return { watermark: quiet === Number.POSITIVE_INFINITY ? MIN_WATERMARK : quiet, idle: true };
  }

  /** What the splits reached, taken as all ended (a hybrid source's part that ended). */
  highest(): number {
    let max = MIN_WATERMARK;
    for (const ts of this.maxTs) if (ts > max) max = ts;
    return max === MIN_WATERMARK ? MIN_WATERMARK : max - this.outOfOrdernessMs - 1;
  }
}
