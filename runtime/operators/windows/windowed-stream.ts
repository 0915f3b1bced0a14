// `keyBy(...).window(assigner)`: the WindowedStream of the public API.

import type { AggregateFunction } from "../../../state/contracts.ts";
import type { OutputTag } from "../../api/functions.ts";
import type { DataStream } from "../../api/datastream.ts";
import type { NodeOptions } from "../../graph/stream-graph.ts";
import type { OperatorSpec } from "../contracts.ts";
import { KeyedProcessOperator } from "../../keyed/operator.ts";
import { nodeOptions } from "../../api/option-codecs.ts";
import type { WindowAssigner } from "./assigners.ts";
import { windowFunction, type ProcessWindowFunction, type WindowCounters, type WindowLogic } from "./window-function.ts";

/** What a WindowedStream needs to add its operator and wrap the result. */
export interface WindowHost {
  addOperator<X>(name: string, spec: OperatorSpec, options?: NodeOptions): DataStream<X>;
}

export class WindowedStream<K, T> {
  private lateTag: OutputTag<T> | undefined;

  constructor(
    private readonly host: WindowHost,
    private readonly keySelector: (value: T) => K,
    readonly assigner: WindowAssigner,
  ) {}

  /** Late records (their windows already fired) go to `tag` instead of only being counted. */
  sideOutputLateData(tag: OutputTag<T>): this {
    this.lateTag = tag;
    return this;
  }

  reduce(reduce: (a: T, b: T) => T, options?: NodeOptions): DataStream<T> {
    return this.build<T>("WindowReduce", { type: "reduce", reduce }, options);
  }

  aggregate<ACC, O>(aggregate: AggregateFunction<T, ACC, O>, options?: NodeOptions): DataStream<O> {
    return this.build<O>("WindowAggregate", { type: "aggregate", aggregate: aggregate as AggregateFunction<T, unknown, O> }, options);
  }

  process<O = any>(fn: ProcessWindowFunction<K, T, O>, options?: NodeOptions): DataStream<O> {
    return this.build<O>("WindowProcess", { type: "process", fn: fn as ProcessWindowFunction<unknown, T, O> }, options);
  }

  private build<O>(name: string, logic: WindowLogic<T, O>, options?: NodeOptions): DataStream<O> {
    const { assigner, lateTag, keySelector } = this;
    const spec: OperatorSpec = {
      type: `window-${logic.type}`,
      keySelectors: [keySelector],
      chainable: false,
      create(ctx) {
        // Counters live with the operator instance (one per subtask) and show in `weir status`.
        const counters: WindowCounters = { lateRecords: 0, windowsFired: 0 };
        const fn = windowFunction<K, T, O>(assigner, logic, lateTag, counters);
        return new KeyedProcessOperator<K, T, O>(ctx, fn, [keySelector], undefined, () => ({ ...counters }));
      },
    };
    return this.host.addOperator<O>(name, spec, nodeOptions(options, `window().${logic.type}()`));
  }
}
