// The keyed function behind `window(EventTimeSessionWindows.withGap(gap))` and its processing-time twin
// (Flink's merging windows): a key's open sessions are listed in one state value; a record opens
// [ts, ts + gap), which absorbs every session it overlaps or touches (their contents merged, their timers
// moved), and a session fires once the watermark (or the clock: window-time.ts) passes its end. Allowed lateness and late records as for fixed windows (window-function.ts).

import * as t from "io-ts";
import { valueState } from "../../../state/mod.ts";
import type { KeyedContext, KeyedProcessFunction } from "../../contracts/functions.ts";
import type { TimeWindow, WindowAssigner } from "./assigners.ts";
import { WindowContents, type WindowSetup } from "./window-contents.ts";
import { windowTime } from "./window-time.ts";

/** [start, end) of each open session of the key, by start. */
const sessionsState = valueState<Array<[number, number]>>("window-sessions", t.array(t.tuple([t.number, t.number])));

export function sessionFunction<K, T, O>(assigner: WindowAssigner, setup: WindowSetup<T, O>): KeyedProcessFunction<K, T, O> {
  const { allowedLatenessMs } = setup;
  const gap = assigner.size;
  const contents = new WindowContents<K, T, O>(setup.logic, setup.counters, setup.lateTag);
  const time = windowTime(assigner, (ctx) => contents.eventTime(ctx));
  const save = async (ctx: KeyedContext<K, O>, sessions: Array<[number, number]>) => {
    if (sessions.length === 0) await ctx.state(sessionsState).clear();
    else await ctx.state(sessionsState).update(sessions.sort((a, b) => a[0] - b[0]));
  };
  const timersOf = (w: TimeWindow) => (allowedLatenessMs > 0 ? [w.end - 1, w.end - 1 + allowedLatenessMs] : [w.end - 1]);

  return {
    async processElement(value, ctx) {
      const ts = time.of(ctx);
      const watermark = time.firedUpTo(ctx);
      const sessions = (await ctx.state(sessionsState).value()) ?? [];
      // Overlapping or touching sessions merge (Flink's TimeWindow.intersects).
      let start = ts;
      let end = ts + gap;
      const absorbed: TimeWindow[] = [];
      const kept: Array<[number, number]> = [];
      for (const [s, e] of sessions) {
        if (s <= ts + gap && e >= ts) {
          absorbed.push({ start: s, end: e });
          start = Math.min(start, s);
          end = Math.max(end, e);
        } else kept.push([s, e]);
      }
      const merged = { start, end };
      // Late when even the merged session is past its allowed lateness (as Flink checks the merged window).
      if (merged.end - 1 + allowedLatenessMs <= watermark) {
        contents.late(ctx, value);
        return;
      }
      const same = absorbed.length === 1 && absorbed[0]!.start === start && absorbed[0]!.end === end;
      if (absorbed.length > 0 && !same) {
        await contents.merge(ctx, absorbed.sort((a, b) => a.start - b.start), merged);
        for (const w of absorbed) for (const at of timersOf(w)) time.remove(ctx, at);
      }
      await contents.add(ctx, merged, value);
      kept.push([start, end]);
      await save(ctx, kept);
      if (merged.end - 1 <= watermark) {
        // Fired already, within the allowed lateness: fires again now (Flink's late firing).
        await contents.fire(ctx, merged, false);
        if (allowedLatenessMs > 0) time.register(ctx, merged.end - 1 + allowedLatenessMs);
        return;
      }
      for (const at of timersOf(merged)) time.register(ctx, at);
    },

    async onTimer(timestamp, ctx: KeyedContext<K, O>) {
      let sessions = (await ctx.state(sessionsState).value()) ?? [];
      const due = sessions.find(([, e]) => e - 1 === timestamp);
      if (due !== undefined) {
        await contents.fire(ctx, { start: due[0], end: due[1] }, allowedLatenessMs === 0);
        if (allowedLatenessMs === 0) sessions = sessions.filter((s) => s !== due);
      }
      if (allowedLatenessMs > 0) {
        const expired = sessions.find(([, e]) => e - 1 + allowedLatenessMs === timestamp);
        if (expired !== undefined) {
          await contents.clear(ctx, { start: expired[0], end: expired[1] });
          sessions = sessions.filter((s) => s !== expired);
        }
      }
      await save(ctx, sessions);
      if (sessions.length > 0) contents.forgetBefore(sessions[0]![0]);
    },
  };
}
