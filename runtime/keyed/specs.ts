// The operator specs of keyed streams: KeyedStream#process (and connected keyed streams), #reduce and #aggregate.

import * as t from "io-ts";
import { valueState } from "../../state/descriptors.ts";
import type { AggregateFunction } from "../../state/contracts.ts";
import type { KeyedProcessFunction, KeySelector, ReduceFunction } from "../contracts/functions.ts";
import type { OperatorSpec } from "../contracts/operators.ts";
import type { SortedKeyFold, SortedKeyFunction } from "./backlog/drain.ts";
import { KeyedProcessOperator, type Dispatch } from "./operator.ts";
import { copyPlain, jsonAccumulators } from "../core/json-data.ts";
import { isPromise } from "../operators/chain-util.ts";

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
  const check = jsonAccumulators("reduce");
  // Folds of a sorted backlog (on arrival, per key) check only their final value: an async reduce's
  // Promise is refused at once instead, or its rejection would end the process as an unhandled one.
  const fold = (a: T, b: T): T => {
    const r = reduce(a, b);
    if (isPromise(r)) check(r);
    return r;
  };
  return keyedProcessSpec<K, T, T>({
    async processElement(value, ctx) {
      const state = ctx.state(current);
      const prev = (await state.value()) as T | undefined;
      // The first value is kept as a copy: a reduce may modify and return its first argument (as Flink's
      // may), which must not change the record another operator also received.
      const next = prev === undefined ? copyPlain(value) : reduce(prev, value);
      check(next);
      await state.update(next);
      // Emitted as a copy: records pass by reference, and the next reduce may modify this object.
      ctx.collect(copyPlain(next));
    },
  }, [selector], undefined, async (values, ctx) => {
    const state = ctx.state(current);
    let acc = (await state.value()) as T | undefined;
    for (const v of values) acc = acc === undefined ? copyPlain(v) : fold(acc, v);
    check(acc);
    await state.update(acc);
    ctx.collect(copyPlain(acc) as T);
  }, { state: current, fold, check });
}

/**
 * A running aggregate per key (beside Flink's rolling sum/min/max: any AggregateFunction): keeps the
 * key's accumulator and emits `getResult` after every record; a sorted backlog (and batch mode) folds
 * each key's records into the accumulator at once and emits the key's final result only.
 */
export function keyedAggregateSpec<T, K, ACC, O>(aggregate: AggregateFunction<T, ACC, O>, selector: KeySelector<T, K>): OperatorSpec {
  const current = valueState<unknown>("aggregate", t.unknown);
  const check = jsonAccumulators("aggregate");
  return keyedProcessSpec<K, T, O>({
    async processElement(value, ctx) {
      const state = ctx.state(current);
      const prev = (await state.value()) as ACC | undefined;
      const next = aggregate.add(value, prev === undefined ? aggregate.createAccumulator() : prev);
      check(next);
      await state.update(next);
      // A copy: `getResult` may hand out (part of) the accumulator, which the next `add` may modify.
      ctx.collect(copyPlain(aggregate.getResult(next)));
    },
  }, [selector], undefined, async (values, ctx) => {
    const state = ctx.state(current);
    let acc = ((await state.value()) as ACC | undefined) ?? aggregate.createAccumulator();
    for (const v of values) acc = aggregate.add(v, acc);
    check(acc);
    await state.update(acc);
    ctx.collect(copyPlain(aggregate.getResult(acc)));
  });
}
