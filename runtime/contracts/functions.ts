// The user-function contracts (types only): what users implement and the contexts weir hands them.

import type { HandleOf, StateDescriptor } from "../../state/contracts.ts";

export type MapFunction<I, O> = (value: I) => O;
export type FilterFunction<T> = (value: T) => boolean;
/** Returns the outputs (an array or any iterable); an empty result drops the record. */
export type FlatMapFunction<I, O> = (value: I) => Iterable<O>;
export type KeySelector<T, K> = (value: T) => K;
export type ReduceFunction<T> = (a: T, b: T) => T;

export interface RuntimeContext {
  readonly jobName: string;
  readonly operatorName: string;
  readonly operatorUid: string;
  readonly subtaskIndex: number;
  readonly parallelism: number;
  readonly maxParallelism: number;
  readonly attempt: string;
}

/** Identifies a side output; records sent there with `ctx.output(tag, value)` leave through `getSideOutput(tag)`. */
export interface OutputTag<T> {
  readonly id: string;
  readonly __type?: T;
}
export function outputTag<T>(id: string): OutputTag<T> {
  return { id };
}

export interface ProcessContext<O> {
  /** The record's event timestamp, if it has one. */
  readonly timestamp: number | undefined;
  collect(value: O, timestamp?: number): void;
  output<X>(tag: OutputTag<X>, value: X): void;
  currentWatermark(): number;
  currentProcessingTime(): number;
}

export interface ProcessFunction<I, O> {
  open?(ctx: RuntimeContext): void | Promise<void>;
  processElement(value: I, ctx: ProcessContext<O>): void | Promise<void>;
  close?(): void | Promise<void>;
}

export interface TimerService {
  registerEventTimeTimer(timestamp: number): void;
  registerProcessingTimeTimer(timestamp: number): void;
  deleteEventTimeTimer(timestamp: number): void;
  deleteProcessingTimeTimer(timestamp: number): void;
}

export interface KeyedContext<K, O> extends ProcessContext<O> {
  readonly key: K;
  /**
   * In `onTimer`, the time of the firing timer (Flink's OnTimerContext.timeDomain()): "event" or
   * "processing"; undefined for a record. In `onTimer`, `timestamp` is the timer's time in either domain
   * (Flink's OnTimerContext.timestamp()); a processing-time timer's output carries no timestamp unless
   * `collect` is given one (wall-clock time is no event time, as Flink erases it).
   */
  readonly timeDomain: "event" | "processing" | undefined;
  state<D extends StateDescriptor>(descriptor: D): HandleOf<D>;
  readonly timers: TimerService;
}

export interface KeyedProcessFunction<K, I, O> {
  open?(ctx: RuntimeContext): void | Promise<void>;
  processElement(value: I, ctx: KeyedContext<K, O>): void | Promise<void>;
  onTimer?(timestamp: number, ctx: KeyedContext<K, O>): void | Promise<void>;
  close?(): void | Promise<void>;
}

export interface CoProcessFunction<I1, I2, O> {
  open?(ctx: RuntimeContext): void | Promise<void>;
  processElement1(value: I1, ctx: ProcessContext<O>): void | Promise<void>;
  processElement2(value: I2, ctx: ProcessContext<O>): void | Promise<void>;
  close?(): void | Promise<void>;
}

export interface KeyedCoProcessFunction<K, I1, I2, O> {
  open?(ctx: RuntimeContext): void | Promise<void>;
  processElement1(value: I1, ctx: KeyedContext<K, O>): void | Promise<void>;
  processElement2(value: I2, ctx: KeyedContext<K, O>): void | Promise<void>;
  onTimer?(timestamp: number, ctx: KeyedContext<K, O>): void | Promise<void>;
  close?(): void | Promise<void>;
}
