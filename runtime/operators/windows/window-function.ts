// The keyed function behind `window(...).reduce / aggregate / process`: per-window state (a state name
// per window start), a timer at the window's max timestamp. With `allowedLateness` (Flink's), a window's
// state stays until the watermark passes its end by that much (a cleanup timer), and each record arriving
// meanwhile fires it again at once with the updated result; records later still are late: counted, and
// sent to a side output when one is asked for.

import type { KeyedContext, KeyedProcessFunction } from "../../contracts/functions.ts";
import type { WindowAssigner } from "./assigners.ts";
import { WindowContents, type WindowSetup } from "./window-contents.ts";
import { windowTime } from "./window-time.ts";

export function windowFunction<K, T, O>(assigner: WindowAssigner, setup: WindowSetup<T, O>): KeyedProcessFunction<K, T, O> {
  const { allowedLatenessMs } = setup;
  const contents = new WindowContents<K, T, O>(setup.logic, setup.counters, setup.lateTag);
  const time = windowTime(assigner, (ctx) => contents.eventTime(ctx));

  return {
    async processElement(value, ctx) {
      const ts = time.of(ctx);
      const watermark = time.firedUpTo(ctx);
      const assigned = assigner.assign(ts);
      // A window takes records until the watermark passes its end by the allowed lateness.
      const windows = assigned.filter((w) => w.end - 1 + allowedLatenessMs > watermark);
      if (windows.length === 0) {
        // In a gap between sliding windows (slide > size) and not late: dropped, as Flink's WindowOperator does.
        if (assigned.length === 0 && ts > watermark) return;
        contents.late(ctx, value);
        return;
      }
      for (const w of windows) {
        await contents.add(ctx, w, value);
        if (w.end - 1 <= watermark) {
          // Fired already, within the allowed lateness: fires again now, with this record (Flink's late firing).
          await contents.fire(ctx, w, false);
          continue;
        }
        time.register(ctx, w.end - 1);
        if (allowedLatenessMs > 0) time.register(ctx, w.end - 1 + allowedLatenessMs);
      }
    },

    async onTimer(timestamp, ctx: KeyedContext<K, O>) {
      // The window ending here fires (and is cleared unless lateness keeps it), and with lateness, the
      // window whose lateness ends here is cleared: one timestamp can be both.
      const w = assigner.windowEndingAt(timestamp);
      // Timers fire in time order: windows that started before this one (and their lateness) are done for every key.
      contents.forgetBefore(w.start - allowedLatenessMs);
      await contents.fire(ctx, w, allowedLatenessMs === 0);
      if (allowedLatenessMs > 0) await contents.clear(ctx, assigner.windowEndingAt(timestamp - allowedLatenessMs));
    },
  };
}
