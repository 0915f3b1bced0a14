// The time a window function works in: event time (the record's timestamp, the watermark, event-time
// timers) or processing time (the clock when the record arrives, processing-time timers; never late, as
// in Flink, whose processing-time windows have no lateness).

import type { KeyedContext } from "../../contracts/functions.ts";
import type { WindowAssigner } from "./assigners.ts";

/** What of a keyed context the window's time needs (any key and output type). */
export type TimeContext = Pick<KeyedContext<unknown, unknown>, "timestamp" | "currentWatermark" | "currentProcessingTime" | "timers">;

export interface WindowTime {
  /** The time that assigns the record's windows. */
  of(ctx: TimeContext): number;
  /** Windows ending at or before it have fired. */
  firedUpTo(ctx: TimeContext): number;
  register(ctx: TimeContext, at: number): void;
  remove(ctx: TimeContext, at: number): void;
}

export function windowTime(assigner: WindowAssigner, eventTime: (ctx: TimeContext) => number): WindowTime {
  if (assigner.timeDomain === "processing") {
    return {
      of: (ctx) => ctx.currentProcessingTime(),
      // A window assigned from the clock's time ends after it: none is late, the fired ones are cleared.
      firedUpTo: () => Number.NEGATIVE_INFINITY,
      register: (ctx, at) => ctx.timers.registerProcessingTimeTimer(at),
      remove: (ctx, at) => ctx.timers.deleteProcessingTimeTimer(at),
    };
  }
  return {
    of: eventTime,
    firedUpTo: (ctx) => ctx.currentWatermark(),
    register: (ctx, at) => ctx.timers.registerEventTimeTimer(at),
    remove: (ctx, at) => ctx.timers.deleteEventTimeTimer(at),
  };
}
