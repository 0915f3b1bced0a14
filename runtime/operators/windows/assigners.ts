// Window assigners (Flink's Tumbling/Sliding EventTime and ProcessingTime windows, and session windows):
// a window is [start, end); its results carry the timestamp end − 1. Event-time windows fire when the
// watermark reaches end − 1; processing-time windows (assigned by the clock when a record arrives) when
// the clock does (window-time.ts).

import { asGiven } from "../../core/preview.ts";
import { isPositiveInt } from "../../core/validation.ts";

/** A wrong argument as given: `"1000"` (a string) must not read as the number it looks like. */
const shown = (v: unknown): string => `${asGiven(v)}${typeof v === "string" ? " (a string)" : ""}`;

export interface TimeWindow {
  readonly start: number;
  readonly end: number;
}

export interface WindowAssigner {
  /** "session": windows merge (session-function.ts); `size` is the gap. */
  readonly kind: "tumbling" | "sliding" | "session";
  readonly size: number;
  /** Which time assigns and fires the windows; absent: event time. */
  readonly timeDomain?: "event" | "processing";
  /** The windows a record with timestamp `ts` belongs to. */
  assign(ts: number): TimeWindow[];
  /** The window whose timer fires at `maxTimestamp` (= end − 1). */
  windowEndingAt(maxTimestamp: number): TimeWindow;
  /**
   * What lays out the windows' state and timers (`TumblingEventTimeWindows.of(1000)`): a restore under
   * another is refused (a session's gap may change: sessions keep their bounds). Absent: not checked.
   */
  readonly layout?: string;
}

type Domain = NonNullable<WindowAssigner["timeDomain"]>;

function windowStart(ts: number, offset: number, slide: number): number {
  const r = (ts - offset) % slide;
  return r < 0 ? ts - (r + slide) : ts - r;
}

function tumbling(name: string, timeDomain: Domain, size: number, offset: number): WindowAssigner {
  if (!isPositiveInt(size)) throw new RangeError(`${name}: size must be a positive integer (ms), got ${shown(size)}`);
  if (!(Number.isInteger(offset) && Math.abs(offset) < size)) throw new RangeError(`${name}: offset must be an integer with |offset| < size (${size}), got ${shown(offset)}`);
  return {
    kind: "tumbling",
    size,
    timeDomain,
    layout: `${name}(${size}${offset ? `, ${offset}` : ""})`,
    assign: (ts) => {
      const start = windowStart(ts, offset, size);
      return [{ start, end: start + size }];
    },
    windowEndingAt: (max) => ({ start: max + 1 - size, end: max + 1 }),
  };
}

function sliding(name: string, timeDomain: Domain, size: number, slide: number, offset: number): WindowAssigner {
  if (!isPositiveInt(size)) throw new RangeError(`${name}: size must be a positive integer (ms), got ${shown(size)}`);
  // A slide larger than the size leaves gaps between windows (as Flink): records there fall in no window.
  if (!isPositiveInt(slide)) throw new RangeError(`${name}: slide must be a positive integer (ms), got ${shown(slide)}`);
  if (!(Number.isInteger(offset) && Math.abs(offset) < slide)) throw new RangeError(`${name}: offset must be an integer with |offset| < slide (${slide}), got ${shown(offset)}`);
  return {
    kind: "sliding",
    size,
    timeDomain,
    layout: `${name}(${size}, ${slide}${offset ? `, ${offset}` : ""})`,
    assign: (ts) => {
      const out: TimeWindow[] = [];
      const last = windowStart(ts, offset, slide);
      for (let start = last; start > ts - size; start -= slide) out.push({ start, end: start + size });
      return out;
    },
    windowEndingAt: (max) => ({ start: max + 1 - size, end: max + 1 }),
  };
}

/**
 * A window per burst of a key's records: each record opens [ts, ts + gap), and windows that overlap or
 * touch merge (Flink's session windows). It fires once no record came for `gap`.
 */
function session(name: string, timeDomain: Domain, gap: number): WindowAssigner {
  if (!isPositiveInt(gap)) throw new RangeError(`${name}: gap must be a positive integer (ms), got ${shown(gap)}`);
  return {
    kind: "session",
    size: gap,
    timeDomain,
    layout: name.replace(".withGap", ""),
    assign: (ts) => [{ start: ts, end: ts + gap }],
    windowEndingAt: (max) => ({ start: max + 1 - gap, end: max + 1 }),
  };
}

export const TumblingEventTimeWindows = {
  of: (size: number, offset = 0): WindowAssigner => tumbling("TumblingEventTimeWindows.of", "event", size, offset),
} as const;

export const SlidingEventTimeWindows = {
  of: (size: number, slide: number, offset = 0): WindowAssigner => sliding("SlidingEventTimeWindows.of", "event", size, slide, offset),
} as const;

export const EventTimeSessionWindows = {
  withGap: (gap: number): WindowAssigner => session("EventTimeSessionWindows.withGap", "event", gap),
} as const;

/** Windows of the clock's time when each record arrives (Flink's): no timestamps or watermarks needed. */
export const TumblingProcessingTimeWindows = {
  of: (size: number, offset = 0): WindowAssigner => tumbling("TumblingProcessingTimeWindows.of", "processing", size, offset),
} as const;

export const SlidingProcessingTimeWindows = {
  of: (size: number, slide: number, offset = 0): WindowAssigner => sliding("SlidingProcessingTimeWindows.of", "processing", size, slide, offset),
} as const;

export const ProcessingTimeSessionWindows = {
  withGap: (gap: number): WindowAssigner => session("ProcessingTimeSessionWindows.withGap", "processing", gap),
} as const;
