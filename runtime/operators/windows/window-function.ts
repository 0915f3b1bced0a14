// The keyed function behind `window(...).reduce / aggregate / process`: per-window state (a state name
// per window start), a timer at the window's max timestamp. With `allowedLateness` (Flink's), a window's
// state stays until the watermark passes its end by that much (a cleanup timer), and each record arriving
// meanwhile fires it again at once with the updated result; records later still are late: counted, and
// sent to a side output when one is asked for.

import * as t from "io-ts";
import type { AggregateFunction } from "../../../state/contracts.ts";
import { listState, valueState } from "../../../state/mod.ts";
import type { KeyedContext, KeyedProcessFunction, OutputTag } from "../../contracts/functions.ts";
import { ErrorCode, WeirError } from "../../core/errors.ts";
import { jsonAccumulators } from "../../core/json-data.ts";
import type { TimeWindow, WindowAssigner } from "./assigners.ts";

export interface ProcessWindowFunction<K, T, O> {
  process(key: K, context: { window: TimeWindow; currentWatermark: number }, elements: T[], out: { collect(value: O): void }): void | Promise<void>;
}

export type WindowLogic<T, O> =
  | { readonly type: "reduce"; readonly reduce: (a: T, b: T) => T }
  | { readonly type: "aggregate"; readonly aggregate: AggregateFunction<T, unknown, O> }
  | { readonly type: "process"; readonly fn: ProcessWindowFunction<unknown, T, O> };

export interface WindowCounters { lateRecords: number; windowsFired: number }

const accOf = (w: TimeWindow) => valueState<unknown>(`window-acc@${w.start}`, t.unknown);
const elementsOf = (w: TimeWindow) => listState<unknown>(`window-elements@${w.start}`, t.unknown);

export function windowFunction<K, T, O>(
  assigner: WindowAssigner,
  logic: WindowLogic<T, O>,
  lateTag: OutputTag<T> | undefined,
  counters: WindowCounters,
  allowedLatenessMs = 0,
): KeyedProcessFunction<K, T, O> {
  // One descriptor per open window, not per record: each key caches a handle per descriptor object, and a
  // new descriptor per record grew that cache by every record (~600 bytes each; audit). Dropped when the
  // window fires.
  const descriptors = new Map<number, { acc: ReturnType<typeof accOf>; elements: ReturnType<typeof elementsOf> }>();
  const descriptorsOf = (w: TimeWindow) => {
    let d = descriptors.get(w.start);
    if (d === undefined) descriptors.set(w.start, (d = { acc: accOf(w), elements: elementsOf(w) }));
    return d;
  };
  const accState = (w: TimeWindow) => descriptorsOf(w).acc;
  const checkAccumulator = jsonAccumulators(`window ${logic.type}`);
  const elementsState = (w: TimeWindow) => descriptorsOf(w).elements;

  /** Emits window `w`'s result as it stands (its state cleared too when nothing can arrive later). */
  const fire = async (w: TimeWindow, ctx: KeyedContext<K, O>, clear: boolean): Promise<void> => {
    const at = w.end - 1;
    if (logic.type === "process") {
      const state = ctx.state(elementsState(w));
      const elements = ((await state.get()) ?? []) as T[];
      if (clear) await state.clear();
      if (elements.length === 0) return;
      counters.windowsFired++;
      await logic.fn.process(ctx.key, { window: w, currentWatermark: ctx.currentWatermark() }, elements, { collect: (o) => ctx.collect(o, at) });
      return;
    }
    const state = ctx.state(accState(w));
    const acc = await state.value();
    if (clear) await state.clear();
    if (acc === undefined) return;
    counters.windowsFired++;
    ctx.collect((logic.type === "reduce" ? acc : logic.aggregate.getResult(acc)) as O, at);
  };

  return {
    async processElement(value, ctx) {
      const ts = ctx.timestamp;
      if (ts === undefined) {
        throw new WeirError(ErrorCode.InvalidGraph, "event-time windows need timestamps: give the source a WatermarkStrategy (fromSource(source, { watermarks })) or call assignTimestampsAndWatermarks(...) before keyBy(...).window(...)");
      }
      const watermark = ctx.currentWatermark();
      const assigned = assigner.assign(ts);
      // A window takes records until the watermark passes its end by the allowed lateness.
      const windows = assigned.filter((w) => w.end - 1 + allowedLatenessMs > watermark);
      if (windows.length === 0) {
        // In a gap between sliding windows (slide > size) and not late: dropped, as Flink's WindowOperator does.
        if (assigned.length === 0 && ts > watermark) return;
        counters.lateRecords++;
        if (lateTag) ctx.output(lateTag, value);
        return;
      }
      for (const w of windows) {
        if (logic.type === "process") {
          await ctx.state(elementsState(w)).add(value);
        } else {
          const state = ctx.state(accState(w));
          const prev = await state.value();
          const next = logic.type === "reduce"
            ? (prev === undefined ? value : logic.reduce(prev as T, value))
            : logic.aggregate.add(value, prev === undefined ? logic.aggregate.createAccumulator() : prev);
          checkAccumulator(next);
          await state.update(next);
        }
        if (w.end - 1 <= watermark) {
          // Fired already, within the allowed lateness: fires again now, with this record (Flink's late firing).
          await fire(w, ctx, false);
          continue;
        }
        ctx.timers.registerEventTimeTimer(w.end - 1);
        if (allowedLatenessMs > 0) ctx.timers.registerEventTimeTimer(w.end - 1 + allowedLatenessMs);
      }
    },

    async onTimer(timestamp, ctx: KeyedContext<K, O>) {
      // The window ending here fires (and is cleared unless lateness keeps it), and with lateness, the
      // window whose lateness ends here is cleared: one timestamp can be both.
      const w = assigner.windowEndingAt(timestamp);
      // Timers fire in time order: windows that started before this one (and their lateness) are done for every key.
      if (descriptors.size > 64) for (const start of descriptors.keys()) if (start < w.start - allowedLatenessMs) descriptors.delete(start);
      await fire(w, ctx, allowedLatenessMs === 0);
      if (allowedLatenessMs > 0) {
        const expired = assigner.windowEndingAt(timestamp - allowedLatenessMs);
        await ctx.state(logic.type === "process" ? elementsState(expired) : accState(expired)).clear();
      }
    },
  };
}
