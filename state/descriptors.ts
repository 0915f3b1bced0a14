// State descriptors: what a user declares once (name, kind, io-ts codecs, functions) and passes to
// `ctx.state(descriptor)` for every record. Descriptors are plain frozen data: equal names in one operator
// mean the same state.

import type * as t from "io-ts";
import { ErrorCode, WeirError } from "../runtime/core/errors.ts";
import type {
  AggregateFunction,
  AggregatingStateDescriptor,
  ListStateDescriptor,
  MapStateDescriptor,
  ReducingStateDescriptor,
  ValueStateDescriptor,
} from "./contracts.ts";

function checkName(name: unknown): string {
  if (typeof name !== "string" || name.length === 0) {
    throw new WeirError(ErrorCode.InvalidOption, `state name must be a non-empty string, got ${JSON.stringify(name)}`);
  }
  return name;
}

function checkCodec(name: string, what: string, codec: unknown): void {
  const c = codec as Partial<t.Type<unknown>> | undefined;
  if (!c || typeof c.decode !== "function" || typeof c.encode !== "function" || typeof c.is !== "function") {
    throw new WeirError(ErrorCode.InvalidOption, `state "${name}": ${what} must be an io-ts codec (e.g. t.number)`);
  }
}

function checkFunction(name: string, what: string, fn: unknown): void {
  if (typeof fn !== "function") throw new WeirError(ErrorCode.InvalidOption, `state "${name}": ${what} must be a function`);
}

export function valueState<T>(name: string, codec: t.Type<T, unknown, unknown>): ValueStateDescriptor<T> {
  checkCodec(checkName(name), "codec", codec);
  return Object.freeze({ kind: "value", name, codec });
}

export function listState<T>(name: string, codec: t.Type<T, unknown, unknown>): ListStateDescriptor<T> {
  checkCodec(checkName(name), "codec", codec);
  return Object.freeze({ kind: "list", name, codec });
}

export function mapState<K, V>(
  name: string,
  keyCodec: t.Type<K, unknown, unknown>,
  valueCodec: t.Type<V, unknown, unknown>,
): MapStateDescriptor<K, V> {
  checkCodec(checkName(name), "key codec", keyCodec);
  checkCodec(name, "value codec", valueCodec);
  return Object.freeze({ kind: "map", name, keyCodec, codec: valueCodec });
}

export function reducingState<T>(name: string, codec: t.Type<T, unknown, unknown>, reduce: (a: T, b: T) => T): ReducingStateDescriptor<T> {
  checkCodec(checkName(name), "codec", codec);
  checkFunction(name, "reduce", reduce);
  return Object.freeze({ kind: "reducing", name, codec, reduce });
}

export function aggregatingState<IN, ACC, OUT>(
  name: string,
  accCodec: t.Type<ACC, unknown, unknown>,
  aggregate: AggregateFunction<IN, ACC, OUT>,
): AggregatingStateDescriptor<IN, ACC, OUT> {
  checkCodec(checkName(name), "accumulator codec", accCodec);
  checkFunction(name, "createAccumulator", aggregate?.createAccumulator);
  checkFunction(name, "add", aggregate?.add);
  checkFunction(name, "getResult", aggregate?.getResult);
  return Object.freeze({ kind: "aggregating", name, codec: accCodec, aggregate });
}
