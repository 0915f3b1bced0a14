// The operator behind `keyBy(...).countWindow(size[, slide])`, Flink's count windows (GlobalWindows with a
// count trigger, and for sliding ones a count evictor):
// - tumbling: each key's records in groups of `size`; the window fires at its `size`-th record and is
//   purged (reduce and aggregate keep only the running accumulator and a count);
// - sliding: every `slide` records of a key, a window over its last `size` records (fewer until `size`
//   arrived), which stay in state.
// A window not full when the input ends never fires (as in Flink, also in batch mode). The output carries
// the timestamp of the record that fired the window; a process function sees the global window
// [MIN_WATERMARK, MAX_WATERMARK].

import * as t from "io-ts";
import { listState, valueState } from "../../../state/mod.ts";
import type { KeyedContext, KeyedProcessFunction } from "../../contracts/functions.ts";
import type { OperatorSpec } from "../../contracts/operators.ts";
import { jsonAccumulators } from "../../core/json-data.ts";
import { KeyedProcessOperator } from "../../keyed/operator.ts";
import { MAX_WATERMARK, MIN_WATERMARK } from "../../transport/frames.ts";
import type { TimeWindow } from "./assigners.ts";
import { accumulate, type WindowCounters, type WindowLogic } from "./window-contents.ts";

const GLOBAL_WINDOW: TimeWindow = Object.freeze({ start: MIN_WATERMARK, end: MAX_WATERMARK });
const acc = valueState<unknown>("count-window-acc", t.unknown);
const counted = valueState<number>("count-window-count", t.number);
const elements = listState<unknown>("count-window-elements", t.unknown);

export function countWindowOperatorSpec<K, T, O>(size: number, slide: number | undefined, logic: WindowLogic<T, O>, keySelector: (value: T) => K): OperatorSpec {
  return {
    type: `count-window-${logic.type}`,
    keySelectors: [keySelector],
    chainable: false,
    sharedSettings: slide === undefined ? `countWindow(${size})` : `countWindow(${size}, ${slide})`,
    create(ctx) {
      const counters: WindowCounters = { lateRecords: 0, windowsFired: 0 };
      const fn = slide === undefined ? tumbling<K, T, O>(size, logic, counters) : sliding<K, T, O>(size, slide, logic, counters);
      return new KeyedProcessOperator<K, T, O>(ctx, fn, [keySelector], undefined, () => ({ windowsFired: counters.windowsFired }));
    },
  };
}

/** The result of a window's records, emitted (a process function emits what it collects). */
async function emit<K, T, O>(logic: WindowLogic<T, O>, ctx: KeyedContext<K, O>, records: readonly T[]): Promise<void> {
  switch (logic.type) {
    case "reduce": ctx.collect(records.reduce((a, b) => logic.reduce(a, b)) as unknown as O); return;
    case "aggregate": ctx.collect(logic.aggregate.getResult(records.reduce((a, v) => logic.aggregate.add(v, a), logic.aggregate.createAccumulator()))); return;
    case "process": await logic.fn.process(ctx.key, { window: GLOBAL_WINDOW, currentWatermark: ctx.currentWatermark() }, [...records], { collect: (o) => ctx.collect(o) });
  }
}

function tumbling<K, T, O>(size: number, logic: WindowLogic<T, O>, counters: WindowCounters): KeyedProcessFunction<K, T, O> {
  const checkAccumulator = jsonAccumulators(`countWindow ${logic.type}`);
  return {
    async processElement(value, ctx) {
      const n = ((await ctx.state(counted).value()) ?? 0) + 1;
      // At or past `size` (as Flink's CountTrigger): a key restored from a larger size holds more already.
      const full = n >= size;
      if (logic.type === "process") {
        if (!full) {
          await ctx.state(elements).add(value);
          await ctx.state(counted).update(n);
          return;
        }
        const records = [...(((await ctx.state(elements).get()) ?? []) as T[]), value];
        await ctx.state(elements).clear();
        await ctx.state(counted).clear();
        counters.windowsFired++;
        await emit(logic, ctx, records);
        return;
      }
      const next = accumulate(logic, n === 1 ? undefined : await ctx.state(acc).value(), value);
      if (!full) {
        checkAccumulator(next);
        await ctx.state(acc).update(next);
        await ctx.state(counted).update(n);
        return;
      }
      await ctx.state(acc).clear();
      await ctx.state(counted).clear();
      counters.windowsFired++;
      ctx.collect((logic.type === "reduce" ? next : logic.aggregate.getResult(next)) as O);
    },
  };
}

function sliding<K, T, O>(size: number, slide: number, logic: WindowLogic<T, O>, counters: WindowCounters): KeyedProcessFunction<K, T, O> {
  return {
    async processElement(value, ctx) {
      const kept = [...(((await ctx.state(elements).get()) ?? []) as T[]), value];
      // The window's last `size` records (Flink's CountEvictor) are all a later window can need.
      const records = kept.length > size ? kept.slice(kept.length - size) : kept;
      await ctx.state(elements).update(records);
      const n = ((await ctx.state(counted).value()) ?? 0) + 1;
      if (n < slide) {
        await ctx.state(counted).update(n);
        return;
      }
      await ctx.state(counted).clear();
      counters.windowsFired++;
      await emit(logic, ctx, records);
    },
  };
}
