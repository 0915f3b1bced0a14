// Event-time window assigners (Flink's TumblingEventTimeWindows / SlidingEventTimeWindows /
// EventTimeSessionWindows): a window is [start, end); its results carry the timestamp end − 1 and fire when
// the watermark reaches end − 1.

import { isPositiveInt } from "../../core/validation.ts";

export interface TimeWindow {
  readonly start: number;
  readonly end: number;
}

export interface WindowAssigner {
  /** "session": windows merge (session-function.ts); `size` is the gap. */
  readonly kind: "tumbling" | "sliding" | "session";
  readonly size: number;
  /** The windows a record with timestamp `ts` belongs to. */
  assign(ts: number): TimeWindow[];
  /** The window whose timer fires at `maxTimestamp` (= end − 1). */
  windowEndingAt(maxTimestamp: number): TimeWindow;
}

function windowStart(ts: number, offset: number, slide: number): number {
  const r = (ts - offset) % slide;
  return r < 0 ? ts - (r + slide) : ts - r;
}

export const TumblingEventTimeWindows = {
  of(size: number, offset = 0): WindowAssigner {
    if (!isPositiveInt(size)) throw new RangeError(`TumblingEventTimeWindows.of: size must be a positive integer (ms), got ${size}`);
    if (!(Number.isInteger(offset) && Math.abs(offset) < size)) throw new RangeError(`TumblingEventTimeWindows.of: offset must be an integer with |offset| < size (${size}), got ${offset}`);
    return {
      kind: "tumbling",
      size,
      assign: (ts) => {
        const start = windowStart(ts, offset, size);
        return [{ start, end: start + size }];
      },
      windowEndingAt: (max) => ({ start: max + 1 - size, end: max + 1 }),
    };
  },
} as const;

export const SlidingEventTimeWindows = {
  of(size: number, slide: number, offset = 0): WindowAssigner {
    if (!isPositiveInt(size)) throw new RangeError(`SlidingEventTimeWindows.of: size must be a positive integer (ms), got ${size}`);
    // A slide larger than the size leaves gaps between windows (as Flink): records there fall in no window.
    if (!isPositiveInt(slide)) throw new RangeError(`SlidingEventTimeWindows.of: slide must be a positive integer (ms), got ${slide}`);
    if (!(Number.isInteger(offset) && Math.abs(offset) < slide)) throw new RangeError(`SlidingEventTimeWindows.of: offset must be an integer with |offset| < slide (${slide}), got ${offset}`);
    return {
      kind: "sliding",
      size,
      assign: (ts) => {
        const out: TimeWindow[] = [];
        const last = windowStart(ts, offset, slide);
        for (let start = last; start > ts - size; start -= slide) out.push({ start, end: start + size });
        return out;
      },
      windowEndingAt: (max) => ({ start: max + 1 - size, end: max + 1 }),
    };
  },
} as const;

export const EventTimeSessionWindows = {
  /**
   * A window per burst of a key's records: each record opens [ts, ts + gap), and windows that overlap or
   * touch merge (Flink's session windows). It fires once no record came for `gap` of event time.
   */
  withGap(gap: number): WindowAssigner {
    if (!isPositiveInt(gap)) throw new RangeError(`EventTimeSessionWindows.withGap: gap must be a positive integer (ms), got ${gap}`);
    return {
      kind: "session",
      size: gap,
      assign: (ts) => [{ start: ts, end: ts + gap }],
      windowEndingAt: (max) => ({ start: max + 1 - gap, end: max + 1 }),
    };
  },
} as const;
