// DataStream, KeyedStream and ConnectedStreams: thin builders over the StreamGraph. Every call adds one
// node in call order, which is what makes the graph deterministic for a given job module.

import type { SinkDef } from "../contracts/connectors.ts";
import type {
  CoProcessFunction,
  FilterFunction,
  FlatMapFunction,
  KeyedCoProcessFunction,
  KeyedProcessFunction,
  KeySelector,
  MapFunction,
  OutputTag,
  ProcessFunction,
  ReduceFunction,
} from "../contracts/functions.ts";
import type { WatermarkStrategy } from "../contracts/watermarks.ts";
import type { NodeOptions, StreamGraph } from "../graph/stream-graph.ts";
import { functionsText } from "../graph/user-code.ts";
import { coProcessSpec, filterSpec, flatMapSpec, mapSpec, processSpec } from "../operators/basic.ts";
import { timestampsSpec } from "../operators/timestamps.ts";
import { keyedAggregateSpec, keyedProcessSpec, keyedReduceSpec } from "../keyed/specs.ts";
import { ErrorCode, WeirError } from "../core/errors.ts";
import { preview } from "../core/preview.ts";
import type { WindowAssigner } from "../operators/windows/assigners.ts";
import { windowOperatorSpec } from "../operators/windows/window-operator.ts";
import { countWindowOperatorSpec } from "../operators/windows/count-window.ts";
import type { ProcessWindowFunction, WindowLogic } from "../operators/windows/window-contents.ts";
import type { AggregateFunction } from "../../state/contracts.ts";
import { CollectOptionsCodec, nodeOptions } from "./option-codecs.ts";
import { decodeOptions, isPositiveInt } from "../core/validation.ts";
import { requireFunction, requireMethods, requireNoMore, requireSameJob, requireTag, requireWatermarkStrategy } from "./argument-checks.ts";

/** What a stream needs from its environment. */
export interface StreamHost {
  readonly graph: StreamGraph;
  /** Runs the job with a collecting sink on `stream` and returns what it collected. */
  collect<T>(stream: DataStream<T>, options: { limit?: number }): Promise<T[]>;
  /** Adds a cache node after `input` (DataStream.cache). */
  addCache(input: number): number;
  /** Drops a cached stream's data: the next execution computes it again. */
  invalidateCache(cacheNode: number): Promise<void>;
}

export interface CollectOptions {
  /** Stop the job once this many records were collected (needed for unbounded sources). */
  readonly limit?: number;
}

const AGGREGATE_METHODS = ["createAccumulator", "add", "getResult"] as const;

export class DataStream<T> {
  constructor(protected readonly host: StreamHost, readonly nodeId: number) {}

  protected get graph(): StreamGraph { return this.host.graph; }

  map<O>(fn: MapFunction<T, O>, options?: NodeOptions): DataStream<O> {
    requireFunction(fn, "map()");
    return new DataStream<O>(this.host, this.graph.addOperator("Map", [[this.nodeId]], mapSpec(fn), nodeOptions(options, "map()"), functionsText(fn)));
  }

  filter(fn: FilterFunction<T>, options?: NodeOptions): DataStream<T> {
    requireFunction(fn, "filter()");
    return new DataStream<T>(this.host, this.graph.addOperator("Filter", [[this.nodeId]], filterSpec(fn), nodeOptions(options, "filter()"), functionsText(fn)));
  }

  flatMap<O>(fn: FlatMapFunction<T, O>, options?: NodeOptions): DataStream<O> {
    requireFunction(fn, "flatMap()");
    return new DataStream<O>(this.host, this.graph.addOperator("FlatMap", [[this.nodeId]], flatMapSpec(fn), nodeOptions(options, "flatMap()"), functionsText(fn)));
  }

  process<O = any>(fn: ProcessFunction<T, O>, options?: NodeOptions): DataStream<O> {
    requireMethods(fn, ["processElement"], "process()", "a ProcessFunction");
    return new DataStream<O>(this.host, this.graph.addOperator("Process", [[this.nodeId]], processSpec(fn), nodeOptions(options, "process()"), functionsText(fn)));
  }

  keyBy<K>(selector: KeySelector<T, K>, ...extra: never[]): KeyedStream<K, T> {
    if (typeof selector !== "function") throw new WeirError(ErrorCode.InvalidGraph, "keyBy: expected a key selector function");
    requireNoMore(extra, "keyBy()", "a key selector");
    return new KeyedStream<K, T>(this.host, this.graph.addPartition(this.nodeId, { type: "hash", selector }), selector);
  }

  /** Round-robin to the next operator's subtasks. */
  rebalance(): DataStream<T> {
    return new DataStream<T>(this.host, this.graph.addPartition(this.nodeId, { type: "rebalance" }));
  }

  /** Every record to every subtask of the next operator. */
  broadcast(): DataStream<T> {
    return new DataStream<T>(this.host, this.graph.addPartition(this.nodeId, { type: "broadcast" }));
  }

  union(...others: DataStream<T>[]): DataStream<T> {
    for (const o of others) this.requireSameJob(o, "union()");
    return new DataStream<T>(this.host, this.graph.addUnion([this.nodeId, ...others.map((o) => o.nodeId)]));
  }

  connect<U>(other: DataStream<U>, ...extra: never[]): ConnectedStreams<T, U> {
    this.requireSameJob(other, "connect()");
    requireNoMore(extra, "connect()", "one stream");
    return new ConnectedStreams<T, U>(this.host, this, other);
  }

  assignTimestampsAndWatermarks(strategy: WatermarkStrategy<T>, options?: NodeOptions): DataStream<T> {
    requireWatermarkStrategy(strategy, "assignTimestampsAndWatermarks()");
    return new DataStream<T>(this.host, this.graph.addOperator("Timestamps/Watermarks", [[this.nodeId]], timestampsSpec(strategy), nodeOptions(options, "assignTimestampsAndWatermarks()"), functionsText(strategy)));
  }

  private requireSameJob(other: unknown, what: string): void {
    requireSameJob(other, other instanceof DataStream, other instanceof DataStream && other.host === this.host, what);
  }

  /** Records an upstream operator sent to `tag` with `ctx.output(tag, value)`. */
  getSideOutput<X>(tag: OutputTag<X>): DataStream<X> {
    requireTag(tag, "getSideOutput()");
    return new DataStream<X>(this.host, this.graph.addSideOutput(this.nodeId, tag.id));
  }

  sinkTo(sink: SinkDef<T>, options?: NodeOptions): DataStreamSink {
    requireMethods(sink, ["createWriter"], "sinkTo()", "a sink such as Sinks.jetstream(...)");
    return new DataStreamSink(this.graph.addSink(this.nodeId, sink as SinkDef<unknown>, nodeOptions(options, "sinkTo()")));
  }

  /**
   * Batch mode (FLIP-205): keeps this stream's records for later executions of the same environment.
   * The first execution that computes the stream also writes it to a JetStream stream; later ones read
   * it back instead of running what is upstream of it. Lives until `invalidate()` or the environment's
   * `close()`. Consumers must not assume how the cached records are partitioned.
   */
  cache(): CachedDataStream<T> {
    return new CachedDataStream<T>(this.host, this.host.addCache(this.nodeId));
  }

  /** Runs the job with this stream collected into an array (bounded sources, or a `limit`). */
  executeAndCollect(options: CollectOptions = {}): Promise<T[]> {
    const limit = (options as { limit?: unknown }).limit;
    if (limit !== undefined && !isPositiveInt(limit)) {
      const got = typeof limit === "number" ? String(limit) : JSON.stringify(limit);
      return Promise.reject(new WeirError(ErrorCode.InvalidOption, `executeAndCollect: limit must be a positive integer, got ${got}`));
    }
    return this.host.collect(this, decodeOptions(CollectOptionsCodec, options, "executeAndCollect() options"));
  }
}

/** A cached stream (FLIP-205): use it like any stream; `invalidate()` drops the cached records. */
export class CachedDataStream<T> extends DataStream<T> {
  invalidate(): Promise<void> {
    return this.host.invalidateCache(this.nodeId);
  }

  async [Symbol.asyncDispose](): Promise<void> { await this.invalidate(); }
}

export class DataStreamSink {
  constructor(readonly nodeId: number) {}
}

export class KeyedStream<K, T> extends DataStream<T> {
  constructor(host: StreamHost, nodeId: number, readonly keySelector: KeySelector<T, K>) {
    super(host, nodeId);
  }

  override process<O = any>(fn: KeyedProcessFunction<K, T, O>, options?: NodeOptions): DataStream<O> {
    requireMethods(fn, ["processElement"], "keyBy().process()", "a KeyedProcessFunction");
    const spec = keyedProcessSpec(fn, [this.keySelector]);
    return new DataStream<O>(this.host, this.graph.addOperator("KeyedProcess", [[this.nodeId]], spec, nodeOptions(options, "keyBy().process()"), functionsText(fn)));
  }

  /** A running reduce per key: emits the updated value for every record (Flink's KeyedStream#reduce). */
  reduce(fn: ReduceFunction<T>, options?: NodeOptions): DataStream<T> {
    requireFunction(fn, "keyBy().reduce()");
    return new DataStream<T>(this.host, this.graph.addOperator("Reduce", [[this.nodeId]], keyedReduceSpec(fn, this.keySelector), nodeOptions(options, "keyBy().reduce()"), functionsText(fn)));
  }

  /**
   * A running aggregate per key: emits `getResult` of the key's accumulator after every record (in batch
   * mode and over a sorted backlog, the key's final result only, as `reduce`).
   */
  aggregate<ACC, O>(fn: AggregateFunction<T, ACC, O>, options?: NodeOptions): DataStream<O> {
    requireMethods(fn, AGGREGATE_METHODS, "keyBy().aggregate()", "an AggregateFunction");
    return new DataStream<O>(this.host, this.graph.addOperator("Aggregate", [[this.nodeId]], keyedAggregateSpec(fn, this.keySelector), nodeOptions(options, "keyBy().aggregate()"), functionsText(fn)));
  }

  /** Event-time or processing-time windows per key: `.reduce`, `.aggregate` or `.process` the records of each window. */
  window(assigner: WindowAssigner, ...extra: never[]): WindowedStream<K, T> {
    requireMethods(assigner, ["assign", "windowEndingAt"], "keyBy().window()", "a window assigner such as TumblingEventTimeWindows.of(ms)");
    requireNoMore(extra, "keyBy().window()", "a window assigner");
    const domain = assigner.timeDomain;
    if (domain !== undefined && domain !== "event" && domain !== "processing") {
      throw new WeirError(ErrorCode.InvalidGraph, `keyBy().window(): timeDomain must be "event" or "processing", got ${preview(domain)}`);
    }
    return new WindowedStream<K, T>(this.host, this.nodeId, this.keySelector, assigner);
  }

  /**
   * Count windows per key (Flink's countWindow): `size` records each, fired at the `size`-th and purged;
   * with `slide`, every `slide` records a window over the key's last `size`. A window not full when the
   * input ends never fires.
   */
  countWindow(size: number, slide?: number): CountWindowedStream<K, T> {
    for (const [name, v] of [["size", size], ["slide", slide]] as const) {
      if ((name === "size" || v !== undefined) && !isPositiveInt(v)) throw new WeirError(ErrorCode.InvalidGraph, `keyBy().countWindow(): ${name} must be a positive integer, got ${preview(v)}`);
    }
    return new CountWindowedStream<K, T>(this.host, this.nodeId, this.keySelector, size, slide);
  }
}

/** `keyBy(...).countWindow(size[, slide])`: each count window's records reduced, aggregated or processed when it fires. */
export class CountWindowedStream<K, T> {
  constructor(
    private readonly host: StreamHost,
    private readonly nodeId: number,
    private readonly keySelector: (value: T) => K,
    readonly size: number,
    readonly slide: number | undefined,
  ) {}

  reduce(reduce: (a: T, b: T) => T, options?: NodeOptions): DataStream<T> {
    requireFunction(reduce, "countWindow().reduce()");
    return this.build<T>("CountWindowReduce", { type: "reduce", reduce }, options);
  }

  aggregate<ACC, O>(aggregate: AggregateFunction<T, ACC, O>, options?: NodeOptions): DataStream<O> {
    requireMethods(aggregate, AGGREGATE_METHODS, "countWindow().aggregate()", "an AggregateFunction");
    return this.build<O>("CountWindowAggregate", { type: "aggregate", aggregate: aggregate as AggregateFunction<T, unknown, O> }, options);
  }

  process<O = any>(fn: ProcessWindowFunction<K, T, O>, options?: NodeOptions): DataStream<O> {
    requireMethods(fn, ["process"], "countWindow().process()", "a ProcessWindowFunction");
    return this.build<O>("CountWindowProcess", { type: "process", fn: fn as ProcessWindowFunction<unknown, T, O> }, options);
  }

  private build<O>(name: string, logic: WindowLogic<T, O>, options?: NodeOptions): DataStream<O> {
    const spec = countWindowOperatorSpec<K, T, O>(this.size, this.slide, logic, this.keySelector);
    return new DataStream<O>(this.host, this.host.graph.addOperator(name, [[this.nodeId]], spec, nodeOptions(options, `countWindow().${logic.type}()`), functionsText(logic)));
  }
}

/** `keyBy(...).window(assigner)`: the window's records reduced, aggregated or processed when it fires. */
export class WindowedStream<K, T> {
  private lateTag: OutputTag<T> | undefined;
  private latenessMs = 0;

  constructor(
    private readonly host: StreamHost,
    private readonly nodeId: number,
    private readonly keySelector: (value: T) => K,
    readonly assigner: WindowAssigner,
  ) {}

  /** Late records (past their windows' allowed lateness) go to `tag` instead of only being counted. */
  sideOutputLateData(tag: OutputTag<T>): this {
    requireTag(tag, "window().sideOutputLateData()");
    this.requireEventTime("window().sideOutputLateData()");
    this.lateTag = tag;
    return this;
  }

  /**
   * Keeps each window's state until the watermark passes its end by `ms` (Flink's allowedLateness; default
   * 0): a record arriving meanwhile fires the window again at once, with the updated result.
   */
  allowedLateness(ms: number): this {
    if (!(typeof ms === "number" && Number.isInteger(ms) && ms >= 0)) {
      throw new WeirError(ErrorCode.InvalidGraph, `window().allowedLateness(): expected a non-negative integer (ms), got ${preview(ms)}`);
    }
    if (ms > 0) this.requireEventTime("window().allowedLateness()");
    this.latenessMs = ms;
    return this;
  }

  reduce(reduce: (a: T, b: T) => T, options?: NodeOptions): DataStream<T> {
    requireFunction(reduce, "window().reduce()");
    return this.build<T>("WindowReduce", { type: "reduce", reduce }, options);
  }

  aggregate<ACC, O>(aggregate: AggregateFunction<T, ACC, O>, options?: NodeOptions): DataStream<O> {
    requireMethods(aggregate, AGGREGATE_METHODS, "window().aggregate()", "an AggregateFunction");
    if (this.assigner.kind === "session") requireMethods(aggregate, ["merge"], `window(${this.assigner.timeDomain === "processing" ? "ProcessingTimeSessionWindows" : "EventTimeSessionWindows"}).aggregate()`, "an AggregateFunction with merge (sessions that a record joins are merged)");
    return this.build<O>("WindowAggregate", { type: "aggregate", aggregate: aggregate as AggregateFunction<T, unknown, O> }, options);
  }

  process<O = any>(fn: ProcessWindowFunction<K, T, O>, options?: NodeOptions): DataStream<O> {
    requireMethods(fn, ["process"], "window().process()", "a ProcessWindowFunction");
    return this.build<O>("WindowProcess", { type: "process", fn: fn as ProcessWindowFunction<unknown, T, O> }, options);
  }

  /** Processing-time windows have no late records (a window is assigned from the clock when the record arrives). */
  private requireEventTime(method: string): void {
    if (this.assigner.timeDomain === "processing") {
      throw new WeirError(ErrorCode.InvalidGraph, `${method}: processing-time windows have no late records; it applies to event-time windows`);
    }
  }

  private build<O>(name: string, logic: WindowLogic<T, O>, options?: NodeOptions): DataStream<O> {
    const spec = windowOperatorSpec<K, T, O>(this.assigner, logic, this.lateTag, this.keySelector, this.latenessMs);
    return new DataStream<O>(this.host, this.host.graph.addOperator(name, [[this.nodeId]], spec, nodeOptions(options, `window().${logic.type}()`), functionsText(logic, this.assigner)));
  }
}

export class ConnectedStreams<A, B> {
  constructor(private readonly host: StreamHost, readonly first: DataStream<A>, readonly second: DataStream<B>) {}

  process<O = any>(fn: CoProcessFunction<A, B, O>, options?: NodeOptions): DataStream<O> {
    // Two keyed streams connected are keyed (Flink's KeyedCoProcessOperator): state and timers per key.
    if (this.first instanceof KeyedStream && this.second instanceof KeyedStream) {
      return new ConnectedKeyedStreams<unknown, A, B>(this.host, this.first, this.second).process<O>(fn as KeyedCoProcessFunction<unknown, A, B, O>, options);
    }
    requireMethods(fn, ["processElement1", "processElement2"], "connect().process()", "a CoProcessFunction");
    const id = this.host.graph.addOperator("CoProcess", [[this.first.nodeId], [this.second.nodeId]], coProcessSpec(fn), nodeOptions(options, "connect().process()"), functionsText(fn));
    return new DataStream<O>(this.host, id);
  }

  map<O>(fn1: MapFunction<A, O>, fn2: MapFunction<B, O>, options?: NodeOptions): DataStream<O> {
    const co: CoProcessFunction<A, B, O> & { userFunctions: object } = {
      processElement1: (v, ctx) => ctx.collect(fn1(v)),
      processElement2: (v, ctx) => ctx.collect(fn2(v)),
      userFunctions: { fn1, fn2 }, // what functionsText reads: the wrappers' text is the same for any map
    };
    return this.process<O>(co, { name: "CoMap", ...nodeOptions(options, "connect().map()") });
  }

  flatMap<O>(fn1: FlatMapFunction<A, O>, fn2: FlatMapFunction<B, O>, options?: NodeOptions): DataStream<O> {
    const co: CoProcessFunction<A, B, O> & { userFunctions: object } = {
      processElement1: (v, ctx) => { for (const o of fn1(v)) ctx.collect(o); },
      processElement2: (v, ctx) => { for (const o of fn2(v)) ctx.collect(o); },
      userFunctions: { fn1, fn2 },
    };
    return this.process<O>(co, { name: "CoFlatMap", ...nodeOptions(options, "connect().flatMap()") });
  }

  keyBy<K>(key1: KeySelector<A, K>, key2: KeySelector<B, K>): ConnectedKeyedStreams<K, A, B> {
    const a = this.first.keyBy(key1);
    const b = this.second.keyBy(key2);
    return new ConnectedKeyedStreams<K, A, B>(this.host, a, b);
  }
}

export class ConnectedKeyedStreams<K, A, B> {
  constructor(private readonly host: StreamHost, readonly first: KeyedStream<K, A>, readonly second: KeyedStream<K, B>) {}

  process<O = any>(fn: KeyedCoProcessFunction<K, A, B, O>, options?: NodeOptions): DataStream<O> {
    requireMethods(fn, ["processElement1", "processElement2"], "connect().keyBy().process()", "a KeyedCoProcessFunction");
    const spec = keyedProcessSpec<K, A | B, O>({
      ...(fn.open ? { open: (c) => fn.open!(c) } : {}),
      ...(fn.close ? { close: () => fn.close!() } : {}),
      ...(fn.onTimer ? { onTimer: (ts, ctx) => fn.onTimer!(ts, ctx) } : {}),
      processElement: () => { throw new Error("unreachable"); },
    }, [this.first.keySelector, this.second.keySelector], (input, value, ctx) =>
      input === 0 ? fn.processElement1(value as A, ctx) : fn.processElement2(value as B, ctx));
    const id = this.host.graph.addOperator("KeyedCoProcess", [[this.first.nodeId], [this.second.nodeId]], spec, nodeOptions(options, "connect().keyBy().process()"), functionsText(fn));
    return new DataStream<O>(this.host, id);
  }
}
