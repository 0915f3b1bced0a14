// A job whose onTimer registers the next timer (`ctx.timestamp + interval`, a periodic event-time timer)
// never ends once the watermark is final: every timer is due at +∞ and each one fired registers another
// (Flink's streaming and batch modes loop the same way). Counting the timers fired at the final watermark
// turns that silent spin at full CPU into a line saying what happens and how to end it. One counter per
// timer fired there; nothing per record.

import { preview } from "../../core/preview.ts";

/** Timers fired at the final watermark beyond twice those pending when it came (a window's and its cleanup timer) before the first warning. */
export const FINAL_TIMER_LOOP_MARGIN = 1_000_000;

export class FinalTimerWatch {
  private fired = 0;
  private warnAt: number;

  /** `pending`: the timers due when the final watermark came (or a batch key's input ended). */
  constructor(pending: number, private readonly warn: (line: string) => void, private readonly where: string, margin = FINAL_TIMER_LOOP_MARGIN) {
    this.warnAt = 2 * pending + margin;
  }

  /** A timer of `key` fires at the final watermark. */
  firing(key: unknown): void {
    if (++this.fired < this.warnAt) return;
    this.warnAt *= 10;
    this.warn(`${this.where}: ${this.fired} event-time timers fired at the final watermark (the end of input) and their onTimer keeps registering more (key ${preview(key)} the latest): a timer that registers the next one (ctx.timestamp + interval) runs for ever once the watermark is final; register none when ctx.currentWatermark() is MAX_WATERMARK`);
  }
}
