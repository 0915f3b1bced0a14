// The operator specs of keyed streams: KeyedStream#process (and connected keyed streams), #reduce and #aggregate.

import * as t from "io-ts";
import { valueState } from "../../state/descriptors.ts";
import type { AggregateFunction } from "../../state/contracts.ts";
import type { KeyedProcessFunction, KeySelector, ReduceFunction } from "../contracts/functions.ts";
import type { OperatorSpec } from "../contracts/operators.ts";
import type { SortedKeyFold, SortedKeyFunction } from "./backlog/drain.ts";
import { KeyedProcessOperator, type Dispatch } from "./operator.ts";

export function keyedProcessSpec<K, I, O>(
  fn: KeyedProcessFunction<K, I, O>,
  selectors: ReadonlyArray<KeySelector<any, K>>,
  dispatch?: Dispatch<K, I, O>,
  sortedKey?: SortedKeyFunction<K, I, O>,
  sortedKeyFold?: SortedKeyFold<I>,
): OperatorSpec {
  return {
    type: selectors.length > 1 ? "keyed-co-process" : "keyed-process",
    keySelectors: selectors,
    chainable: false,
    create: (ctx) => new KeyedProcessOperator<K, I, O>(
      ctx, fn, selectors, dispatch, undefined,
      sortedKey as SortedKeyFunction<unknown, unknown, unknown> | undefined, sortedKeyFold as SortedKeyFold<unknown> | undefined,
    ),
  };
}

/**
 * Flink's KeyedStream#reduce: keeps the running value per key and emits it after every record; a sorted
 * backlog is folded per key and emits the key's final value only, as Flink's batch reduce does.
 */
export function keyedReduceSpec<T, K>(reduce: ReduceFunction<T>, selector: KeySelector<T, K>): OperatorSpec {
  const current = valueState<unknown>("reduce", t.unknown);
  return keyedProcessSpec<K, T, T>({
    async processElement(value, ctx) {
      const state = ctx.state(current);
      const prev = (await state.value()) as T | undefined;
      const next = prev === undefined ? value : reduce(prev, value);
      await state.update(next);
      ctx.collect(next);
    },
  }, [selector], undefined, async (values, ctx) => {
    const state = ctx.state(current);
    let acc = (await state.value()) as T | undefined;
    for (const v of values) acc = acc === undefined ? v : reduce(acc, v);
    await state.update(acc);
    ctx.collect(acc as T);
  }, { state: current, fold: reduce });
}

/**
 * A running aggregate per key (beside Flink's rolling sum/min/max: any AggregateFunction): keeps the
 * key's accumulator and emits `getResult` after every record; a sorted backlog (and batch mode) folds
 * each key's records into the accumulator at once and emits the key's final result only.
 */
export function keyedAggregateSpec<T, K, ACC, O>(aggregate: AggregateFunction<T, ACC, O>, selector: KeySelector<T, K>): OperatorSpec {
  const current = valueState<unknown>("aggregate", t.unknown);
  return keyedProcessSpec<K, T, O>({
    async processElement(value, ctx) {
      const state = ctx.state(current);
      const prev = (await state.value()) as ACC | undefined;
      const next = aggregate.add(value, prev === undefined ? aggregate.createAccumulator() : prev);
      await state.update(next);
      ctx.collect(aggregate.getResult(next));
    },
  }, [selector], undefined, async (values, ctx) => {
    const state = ctx.state(current);
    let acc = ((await state.value()) as ACC | undefined) ?? aggregate.createAccumulator();
    for (const v of values) acc = aggregate.add(v, acc);
    await state.update(acc);
    ctx.collect(aggregate.getResult(acc));
  });
}
