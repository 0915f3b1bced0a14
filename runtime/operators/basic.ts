// Stateless operators: map, filter, flatMap, process, co-process, and the sink operator.

import type { CoProcessFunction, FilterFunction, FlatMapFunction, MapFunction, ProcessContext, ProcessFunction, OutputTag } from "../contracts/functions.ts";
import type { SinkDef, SinkWriter } from "../contracts/connectors.ts";
import { ErrorCode, UserFunctionError, WeirError, connectorError } from "../core/errors.ts";
import type { MaybePromise, OperatorContext, OperatorSpec, Output, StreamOperator } from "../contracts/operators.ts";
import { collectAll, isPromise } from "./chain-util.ts";
import { ignoreRejection } from "../core/refused-promise.ts";

function fail(ctx: OperatorContext, e: unknown, key?: unknown): Error {
  if (e instanceof UserFunctionError) return e;
  return new UserFunctionError(ctx.runtime.operatorName, ctx.runtime.subtaskIndex, key, e);
}

/** The message refusing `returned`, a Promise (whose rejection is then no unhandled one: the refusal fails the subtask). */
function synchronousOnly(what: string, returned: unknown): string {
  ignoreRejection(returned);
  return `the ${what} function returned a Promise: ${what} is synchronous; use process(...) with an async processElement for async work`;
}

/** A user iterable (a generator) whose errors name the operator, as the function's own do. */
function userIterable<O>(ctx: OperatorContext, values: Iterable<O>): Iterable<O> {
  let it: Iterator<O>;
  try { it = values[Symbol.iterator](); } catch (e) { throw fail(ctx, e); }
  const next = (): IteratorResult<O> => { try { return it.next(); } catch (e) { throw fail(ctx, e); } };
  return { [Symbol.iterator]: () => ({ next }) };
}

/** A user function's open or close hook: its errors name the operator too. */
export function userHook(ctx: OperatorContext, call: () => void | Promise<void>): MaybePromise {
  let r: void | Promise<void>;
  try { r = call(); } catch (e) { throw fail(ctx, e); }
  if (isPromise(r)) return r.catch((e: unknown) => { throw fail(ctx, e); });
}

export function mapSpec<I, O>(fn: MapFunction<I, O>): OperatorSpec {
  return {
    type: "map",
    create(ctx) {
      const out = ctx.output;
      return {
        processElement(value, ts) {
          let r: O;
          try { r = fn(value as I); } catch (e) { throw fail(ctx, e); }
          if (isPromise(r)) throw fail(ctx, new TypeError(synchronousOnly("map", r)));
          return out.collect(r, ts);
        },
      };
    },
  };
}

export function filterSpec<T>(fn: FilterFunction<T>): OperatorSpec {
  return {
    type: "filter",
    create(ctx) {
      const out = ctx.output;
      return {
        processElement(value, ts) {
          let keep: boolean;
          try { keep = fn(value as T); } catch (e) { throw fail(ctx, e); }
          // A promise is truthy: an async filter would keep every record.
          if (keep !== true && isPromise(keep)) throw fail(ctx, new TypeError(synchronousOnly("filter", keep)));
          if (keep) return out.collect(value, ts);
        },
      };
    },
  };
}

export function flatMapSpec<I, O>(fn: FlatMapFunction<I, O>): OperatorSpec {
  return {
    type: "flatMap",
    create(ctx) {
      const out = ctx.output;
      return {
        processElement(value, ts) {
          let r: Iterable<O>;
          try { r = fn(value as I); } catch (e) { throw fail(ctx, e); }
          if (r === undefined || r === null) return;
          if (Array.isArray(r)) return collectAll(out, r, ts);
          if (typeof (r as Partial<Iterable<O>>)[Symbol.iterator] !== "function") {
            throw fail(ctx, new TypeError(isPromise(r) ? synchronousOnly("flatMap", r) : `the flatMap function returned ${typeof r}, not an iterable (an array or a generator)`));
          }
          return collectAll(out, userIterable(ctx, r), ts);
        },
      };
    },
  };
}

/** The ProcessContext handed to user functions, reused across records (they run one at a time). */
export class RecordContext<O> implements ProcessContext<O> {
  timestamp: number | undefined = undefined;
  /** Output carries no timestamp by default (a processing-time timer's: Flink erases it, wall-clock time is no event time). */
  erasesTimestamp = false;
  /** Promises downstream returned while the user function ran (rare: only async chained operators). */
  pending: Promise<void>[] | undefined = undefined;
  constructor(protected readonly op: OperatorContext) {}
  /** Timers are keyed state (the keyed context has them): here, one line saying so rather than "undefined". */
  get timers(): unknown {
    throw new WeirError(ErrorCode.InvalidJob, "timers need a keyed stream: keyBy(...) before process(...), as in Flink");
  }
  collect(value: O, timestamp?: number): void {
    const p = this.op.output.collect(value, timestamp ?? (this.erasesTimestamp ? undefined : this.timestamp));
    if (p) (this.pending ??= []).push(p);
  }
  output<X>(tag: OutputTag<X>, value: X): void {
    const p = this.op.output.side(tag.id, value, this.erasesTimestamp ? undefined : this.timestamp);
    if (p) (this.pending ??= []).push(p);
  }
  /** Waits for what the user function emitted downstream, if anything asked to be waited for. */
  settle(): MaybePromise {
    const p = this.pending;
    if (!p) return;
    this.pending = undefined;
    return Promise.all(p).then(noop);
  }
  currentWatermark(): number { return this.op.currentWatermark(); }
  currentProcessingTime(): number { return this.op.clock.now(); }
}

/** The context of a non-keyed process function: keyed state refused in one line ("ctx.state is not a function" said nothing). */
class UnkeyedRecordContext<O> extends RecordContext<O> {
  state(): never {
    throw new WeirError(ErrorCode.InvalidJob, "state(...) needs a keyed stream: keyBy(...) right before process(...), as in Flink");
  }
}

/** Runs a user callback and then waits for what it emitted downstream; errors name the operator. */
export function runUserCallback(ctx: OperatorContext, rc: RecordContext<unknown>, call: () => void | Promise<void>, key?: unknown): MaybePromise {
  let r: void | Promise<void>;
  try { r = call(); } catch (e) { throw fail(ctx, e, key); }
  return afterUserCallback(ctx, rc, r, key);
}

/** What runUserCallback does once the user function returned `r` (for callers that invoke it themselves). */
export function afterUserCallback(ctx: OperatorContext, rc: RecordContext<unknown>, r: void | Promise<void>, key: unknown): MaybePromise {
  if (isPromise(r)) {
    return r.then(() => rc.settle(), (e) => { throw fail(ctx, e, key); });
  }
  return rc.settle();
}

/** A user function threw: the error names operator, subtask and key. */
export function userError(ctx: OperatorContext, e: unknown, key: unknown): Error {
  return fail(ctx, e, key);
}

function noop(): void {}

export function processSpec<I, O>(fn: ProcessFunction<I, O>): OperatorSpec {
  return {
    type: "process",
    create(ctx) {
      const rc = new UnkeyedRecordContext<O>(ctx);
      return {
        open: () => userHook(ctx, () => fn.open?.(ctx.runtime)),
        processElement(value, ts) {
          rc.timestamp = ts;
          return runUserCallback(ctx, rc as RecordContext<unknown>, () => fn.processElement(value as I, rc));
        },
        close: () => userHook(ctx, () => fn.close?.()),
      };
    },
  };
}

export function coProcessSpec<I1, I2, O>(fn: CoProcessFunction<I1, I2, O>): OperatorSpec {
  return {
    type: "co-process",
    create(ctx) {
      const rc = new UnkeyedRecordContext<O>(ctx);
      return {
        open: () => userHook(ctx, () => fn.open?.(ctx.runtime)),
        processElement(value, ts, input) {
          rc.timestamp = ts;
          return runUserCallback(ctx, rc as RecordContext<unknown>, () =>
            input === 0 ? fn.processElement1(value as I1, rc) : fn.processElement2(value as I2, rc));
        },
        close: () => userHook(ctx, () => fn.close?.()),
      };
    },
  };
}

/** Writes records to a sink; the writer's promises are backpressure. */
export class SinkOperator implements StreamOperator {
  private writer: SinkWriter<unknown> | undefined;
  recordsOut = 0;
  constructor(private readonly def: SinkDef<unknown>, private readonly ctx: OperatorContext) {}
  /** A sink's own error (a custom sink's write, flush or close threw) names the operator and subtask, as a user function's does. */
  private readonly named = (e: unknown): Error => connectorError(this.ctx.runtime.operatorName, this.ctx.runtime.subtaskIndex, e);
  private readonly rethrowNamed = (e: unknown): never => { throw this.named(e); };
  async open(): Promise<void> {
    try { this.writer = await this.createWriter(); } catch (e) { throw this.named(e); }
  }
  private createWriter(): Promise<SinkWriter<unknown>> {
    return this.def.createWriter({
      jobName: this.ctx.runtime.jobName,
      names: this.ctx.names,
      operatorUid: this.ctx.runtime.operatorUid,
      operatorName: this.ctx.runtime.operatorName,
      subtaskIndex: this.ctx.runtime.subtaskIndex,
      parallelism: this.ctx.runtime.parallelism,
      nc: this.ctx.nc,
      deadLetters: this.ctx.deadLetters,
      log: this.ctx.log,
      checkpointing: this.ctx.checkpointing,
      fail: (e) => this.ctx.fail(this.named(e)),
      ...(this.ctx.restoredState() ? { restoredState: this.ctx.restoredState()! } : {}),
    });
  }
  snapshotState(checkpointId: number): unknown {
    return this.writer?.snapshotState?.(checkpointId);
  }
  async notifyCheckpointComplete(checkpointId: number): Promise<void> {
    try { await this.writer?.notifyCheckpointComplete?.(checkpointId); } catch (e) { throw this.named(e); }
  }
  processElement(value: unknown, ts: number | undefined): MaybePromise {
    this.recordsOut++;
    let r: void | Promise<void>;
    try { r = this.writer!.write(value, ts); } catch (e) { throw this.named(e); }
    // Only a write that returned a promise (backpressure, an async sink) pays for naming its rejection.
    return r ? r.catch(this.rethrowNamed) : r;
  }
  onWatermark(): void {}
  async endInput(): Promise<void> { try { await this.writer?.flush(); } catch (e) { throw this.named(e); } }
  async close(): Promise<void> { try { await this.writer?.close(); } catch (e) { throw this.named(e); } }
  metrics(): Record<string, number> { return { ...this.writer?.metrics?.(), recordsOut: this.recordsOut }; }
}

/** The output of the last operator of a chain with nothing downstream. */
export const nullOutput: Output = {
  collect: () => {},
  side: () => {},
  emitWatermark: () => {},
  emitIdle: () => {},
  emitAttributes: () => {},
};
