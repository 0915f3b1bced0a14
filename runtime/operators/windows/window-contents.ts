// What a key's window holds, per window start: the running accumulator (reduce, aggregate) or the
// elements (process), as keyed state named after the window; and its result when the window fires.
// Shared by fixed windows (window-function.ts) and merging session windows (session-function.ts).

import * as t from "io-ts";
import { listState, valueState } from "../../../state/mod.ts";
import type { KeyedContext, OutputTag } from "../../contracts/functions.ts";
import { ErrorCode, WeirError } from "../../core/errors.ts";
import { jsonAccumulators } from "../../core/json-data.ts";
import type { TimeWindow } from "./assigners.ts";
import type { AggregateFunction, StateDescriptor } from "../../../state/contracts.ts";
import type { StateReleasing } from "../../keyed/record-context.ts";

export interface ProcessWindowFunction<K, T, O> {
  process(key: K, context: { window: TimeWindow; currentWatermark: number }, elements: T[], out: { collect(value: O): void }): void | Promise<void>;
}

export type WindowLogic<T, O> =
  | { readonly type: "reduce"; readonly reduce: (a: T, b: T) => T }
  | { readonly type: "aggregate"; readonly aggregate: AggregateFunction<T, unknown, O> }
  | { readonly type: "process"; readonly fn: ProcessWindowFunction<unknown, T, O> };

export interface WindowCounters { lateRecords: number; windowsFired: number }

/** A reduce's or an aggregate's accumulator after `value` (`prev` undefined: the window's first record). */
export function accumulate<T, O>(logic: Exclude<WindowLogic<T, O>, { type: "process" }>, prev: unknown, value: T): unknown {
  return logic.type === "reduce"
    ? (prev === undefined ? value : logic.reduce(prev as T, value))
    : logic.aggregate.add(value, prev === undefined ? logic.aggregate.createAccumulator() : prev);
}

/** What a window function runs with, whatever its windows: its logic, late records' tag, lateness, counters. */
export interface WindowSetup<T, O> {
  readonly logic: WindowLogic<T, O>;
  readonly lateTag: OutputTag<T> | undefined;
  readonly counters: WindowCounters;
  readonly allowedLatenessMs: number;
}

const accOf = (start: number) => valueState<unknown>(`window-acc@${start}`, t.unknown);
const elementsOf = (start: number) => listState<unknown>(`window-elements@${start}`, t.unknown);

/**
 * A window cleared for good: the key forgets its handle (and what the handle holds: the state cache's
 * entry), rather than keep one per past window until its cap (key-slots.ts).
 */
const release = (ctx: KeyedContext<unknown, unknown>, descriptor: StateDescriptor): void => (ctx as Partial<StateReleasing>).releaseState?.(descriptor);

export class WindowContents<K, T, O> {
  // One descriptor per open window, not per record: each key caches a handle per descriptor object, and a
  // new descriptor per record grew that cache by every record (~600 bytes each; audit).
  private readonly descriptors = new Map<number, { acc: ReturnType<typeof accOf>; elements: ReturnType<typeof elementsOf> }>();
  private readonly checkAccumulator: (acc: unknown) => void;

  constructor(private readonly logic: WindowLogic<T, O>, private readonly counters: WindowCounters, private readonly lateTag: OutputTag<T> | undefined) {
    this.checkAccumulator = jsonAccumulators(`window ${logic.type}`);
  }

  /** The record's event time: windows need one. */
  eventTime(ctx: { readonly timestamp: number | undefined }): number {
    const ts = ctx.timestamp;
    if (ts === undefined) {
      throw new WeirError(ErrorCode.InvalidGraph, "event-time windows need timestamps: give the source a WatermarkStrategy (fromSource(source, { watermarks })) or call assignTimestampsAndWatermarks(...) before keyBy(...).window(...)");
    }
    return ts;
  }

  /** A record past its windows' allowed lateness: counted, and sent to the late side output if there is one. */
  late(ctx: KeyedContext<K, O>, value: T): void {
    this.counters.lateRecords++;
    if (this.lateTag) ctx.output(this.lateTag, value);
  }

  /** Adds `value` to window `w` of the key. */
  async add(ctx: KeyedContext<K, O>, w: TimeWindow, value: T): Promise<void> {
    const logic = this.logic;
    if (logic.type === "process") {
      await ctx.state(this.of(w.start).elements).add(value);
      return;
    }
    const state = ctx.state(this.of(w.start).acc);
    const next = accumulate(logic, await state.value(), value);
    this.checkAccumulator(next);
    await state.update(next);
  }

  /** Moves what windows `from` hold into `into` (sessions merging), in the order given. */
  async merge(ctx: KeyedContext<K, O>, from: readonly TimeWindow[], into: TimeWindow): Promise<void> {
    const logic = this.logic;
    if (logic.type === "process") {
      const all: unknown[] = [];
      for (const w of from) {
        const d = this.of(w.start).elements;
        const state = ctx.state(d);
        all.push(...(((await state.get()) ?? []) as unknown[]));
        await state.clear();
        release(ctx, d);
      }
      if (all.length > 0) await ctx.state(this.of(into.start).elements).update(all);
      return;
    }
    let merged: unknown;
    for (const w of from) {
      const d = this.of(w.start).acc;
      const state = ctx.state(d);
      const acc = await state.value();
      await state.clear();
      release(ctx, d);
      if (acc === undefined) continue;
      if (merged === undefined) merged = acc;
      else if (logic.type === "reduce") merged = logic.reduce(merged as T, acc as T);
      else if (logic.aggregate.merge) merged = logic.aggregate.merge(merged, acc);
      else throw new WeirError(ErrorCode.InvalidGraph, "session windows with aggregate() need the AggregateFunction's merge(a, b): sessions that a record joins are merged");
    }
    if (merged !== undefined) {
      this.checkAccumulator(merged);
      await ctx.state(this.of(into.start).acc).update(merged);
    }
  }

  /** Emits window `w`'s result as it stands (at `w.end − 1`), clearing it when `clear`. */
  async fire(ctx: KeyedContext<K, O>, w: TimeWindow, clear: boolean): Promise<void> {
    const logic = this.logic;
    const at = w.end - 1;
    if (logic.type === "process") {
      const d = this.of(w.start).elements;
      const state = ctx.state(d);
      const elements = ((await state.get()) ?? []) as T[];
      if (clear) await state.clear();
      // Nothing stored either: a cleanup timer's time is no window's end (windowEndingAt made one up).
      if (clear || elements.length === 0) release(ctx, d);
      if (elements.length === 0) return;
      this.counters.windowsFired++;
      await logic.fn.process(ctx.key, { window: w, currentWatermark: ctx.currentWatermark() }, elements, { collect: (o) => ctx.collect(o, at) });
      return;
    }
    const d = this.of(w.start).acc;
    const state = ctx.state(d);
    const acc = await state.value();
    if (clear) await state.clear();
    if (clear || acc === undefined) release(ctx, d);
    if (acc === undefined) return;
    this.counters.windowsFired++;
    ctx.collect((logic.type === "reduce" ? acc : logic.aggregate.getResult(acc)) as O, at);
  }

  async clear(ctx: KeyedContext<K, O>, w: TimeWindow): Promise<void> {
    const d = this.of(w.start);
    const descriptor = this.logic.type === "process" ? d.elements : d.acc;
    await ctx.state(descriptor).clear();
    release(ctx, descriptor);
  }

  /** Drops cached descriptors of windows starting before `start` (a later use makes them again). */
  forgetBefore(start: number): void {
    if (this.descriptors.size > 64) for (const s of this.descriptors.keys()) if (s < start) this.descriptors.delete(s);
  }

  private of(start: number): { acc: ReturnType<typeof accOf>; elements: ReturnType<typeof elementsOf> } {
    let d = this.descriptors.get(start);
    if (d === undefined) this.descriptors.set(start, (d = { acc: accOf(start), elements: elementsOf(start) }));
    return d;
  }
}
