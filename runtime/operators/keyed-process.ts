// Keyed operators: KeyedProcessFunction (and reduce on top of it). Each record's key selects its key
// group and state scope; timers are per key. With `asyncState.enabled` (the default) records run through
// the AsyncExecutionController: many in flight, state requests batched, per-key order kept. With it off,
// one record at a time (FLIP-425's sync mode: the baseline and an escape hatch), same code, same results.

import * as t from "io-ts";
import { assignToKeyGroup, canonicalJson } from "../../state/key-groups.ts";
import type { HandleOf, KeyedStateBackend, StateDescriptor, StateRequestHandler, ValueStateDescriptor } from "../../state/contracts.ts";
import { baseAddress, createStateHandle, DirectStateRequestHandler, valueState } from "../../state/mod.ts";
import type { KeyedContext, KeyedProcessFunction, KeySelector, ReduceFunction, TimerService } from "../contracts/functions.ts";
import { ErrorCode, UserFunctionError, WeirError } from "../core/errors.ts";
import { AsyncExecutionController, type AsyncRecord, type RecordTask, type TimerTask } from "../async/controller.ts";
import type { MaybePromise, OperatorContext, OperatorSpec, StreamOperator } from "../contracts/operators.ts";
import { afterUserCallback, RecordContext, runUserCallback, userError } from "./basic.ts";
import { InternalTimerService, type Timer } from "./timer-service.ts";
import { restoreTimers, writeChangedTimers } from "./timer-state.ts";
import { SortBuffer, type ArrivalFold, type SortedKey } from "../backlog/sort-buffer.ts";
import { KeyStateOverlay } from "../backlog/key-overlay.ts";
import { SortedKeysRunner, type KeyTask } from "../backlog/sorted-keys-runner.ts";
import type { RecordAttributes } from "../transport/frames.ts";

type Dispatch<K, I, O> = (input: number, value: I, ctx: KeyedContext<K, O>) => void | Promise<void>;

/**
 * Takes one key's whole sorted backlog at once, as Flink's batch operators do: a reduce folds the values
 * with one state read and one write and emits only the key's final result (no intermediate results while
 * in backlog, FLIP-327). Only for functions without timers.
 */
export type SortedKeyFunction<K, I, O> = (values: readonly I[], ctx: KeyedContext<K, O>) => void | Promise<void>;

/**
 * A sorted-key function that folds its values one after another from the key's state, stores the result
 * there and emits it (reduce): `fold` is that step and `state` where the result goes. Records of a key
 * whose state is empty are then folded as they arrive in the backlog, and the drain stores and emits the
 * folded value without running the sorted-key function.
 */
export interface SortedKeyFold<I> {
  readonly state: ValueStateDescriptor<unknown>;
  fold(acc: I, value: I): I;
}

/** The timers of one key, as the user sees them (created only when a record uses timers). */
class KeyTimers implements TimerService {
  constructor(private readonly service: InternalTimerService, private readonly rc: KeyedRecordContext<unknown, unknown>, private readonly onProcessingTimer: (ts: number) => void) {}
  private timer(timestamp: number): Timer {
    return { timestamp, keyId: this.rc.keyId, key: this.rc.key, keyGroup: this.rc.keyGroup };
  }
  registerEventTimeTimer(ts: number): void { this.service.eventTime.add(this.timer(ts)); }
  deleteEventTimeTimer(ts: number): void { this.service.eventTime.delete(ts, this.rc.keyId); }
  registerProcessingTimeTimer(ts: number): void { if (this.service.processingTime.add(this.timer(ts))) this.onProcessingTimer(ts); }
  deleteProcessingTimeTimer(ts: number): void { this.service.processingTime.delete(ts, this.rc.keyId); }
}

/** The context of one record (or one timer firing) of one key. */
class KeyedRecordContext<K, O> extends RecordContext<O> implements KeyedContext<K, O> {
  private firstDescriptor: StateDescriptor | undefined;
  private firstHandle: unknown;
  private handles: Map<StateDescriptor, unknown> | undefined;
  private keyTimers: TimerService | undefined;

  constructor(
    op: OperatorContext,
    private readonly owner: KeyedProcessOperator<K, unknown, O>,
    readonly key: K,
    readonly keyGroup: number,
    readonly keyId: string,
    private readonly handler: StateRequestHandler,
    private readonly watermark: number | undefined,
  ) {
    super(op);
  }

  get timers(): TimerService {
    return (this.keyTimers ??= this.owner.timerServiceFor(this as KeyedRecordContext<unknown, unknown>));
  }

  state<D extends StateDescriptor>(descriptor: D): HandleOf<D> {
    // Most functions use one state: its handle lives in a field, others in a map (one context per record).
    if (this.firstDescriptor === descriptor) return this.firstHandle as HandleOf<D>;
    if (this.firstDescriptor === undefined) {
      this.firstDescriptor = descriptor;
      return (this.firstHandle = this.createHandle(descriptor)) as HandleOf<D>;
    }
    this.handles ??= new Map();
    let h = this.handles.get(descriptor);
    if (h === undefined) this.handles.set(descriptor, (h = this.createHandle(descriptor)));
    return h as HandleOf<D>;
  }

  private createHandle(descriptor: StateDescriptor): unknown {
    return createStateHandle(descriptor, { operator: this.op.runtime.operatorUid, keyGroup: this.keyGroup, keyId: this.keyId, key: this.key }, this.handler);
  }

  /** In async mode: the watermark when this record arrived, as in synchronous execution. */
  override currentWatermark(): number {
    return this.watermark ?? super.currentWatermark();
  }
}

export class KeyedProcessOperator<K, I, O> implements StreamOperator {
  private direct: StateRequestHandler | undefined;
  private backend: KeyedStateBackend | undefined;
  private sortedRunner: SortedKeysRunner | undefined;
  private aec: AsyncExecutionController | undefined;
  private readonly timers = new InternalTimerService();
  private processingTimer: unknown;
  private processingTimerAt = Number.POSITIVE_INFINITY;
  private stallTimer: unknown;
  private stalled = false;
  private recordsIn = 0;
  private timersFired = 0;
  private restoredTimers = { event: 0, processing: 0 };
  /** Set while the input is in backlog and the job sorts backlogs (FLIP-327). */
  private backlog: SortBuffer | undefined;
  /** The last watermark received while buffering: held back until the sorted records are processed. */
  private backlogWatermark: number | undefined;
  private sortedRecords = 0;
  private sortSpills = 0;

  constructor(
    private readonly ctx: OperatorContext,
    private readonly fn: KeyedProcessFunction<K, I, O>,
    private readonly selectors: ReadonlyArray<KeySelector<any, K>>,
    private readonly dispatch: Dispatch<K, I, O> | undefined,
    private readonly extraMetrics?: () => Record<string, number>,
    private readonly sortedKey?: SortedKeyFunction<K, I, O>,
    private readonly sortedKeyFold?: SortedKeyFold<I>,
  ) {}

  async open(): Promise<void> {
    const backend = await this.ctx.stateBackend();
    this.backend = backend;
    const a = this.ctx.job.asyncState;
    if (a.enabled) {
      this.aec = new AsyncExecutionController(backend, a, this.ctx.clock, (e, record) => this.ctx.fail(this.wrap(e, record.key)), backend.applyNow?.bind(backend));
      this.sortedRunner = new SortedKeysRunner(backend, a.bufferSize);
      this.watchForStalls(a.stallTimeoutMs);
    } else {
      this.direct = new DirectStateRequestHandler(backend);
    }
    if (this.ctx.restoring) {
      const { operatorUid, operatorName } = this.ctx.runtime;
      this.restoredTimers = await restoreTimers(this.timers, backend, operatorUid, operatorName, this.ctx.keyGroupRange);
      // Processing-time timers whose time passed while the job was down fire at once (as in Flink).
      const next = this.timers.processingTime.peek();
      if (next) this.scheduleProcessingTimer(next.timestamp);
    }
    await this.fn.open?.(this.ctx.runtime);
  }

  processElement(value: unknown, ts: number | undefined, input: number): MaybePromise {
    this.recordsIn++;
    let key: K;
    try { key = this.selectors[input]!(value); } catch (e) {
      throw new UserFunctionError(`${this.ctx.runtime.operatorName} (key selector)`, this.ctx.runtime.subtaskIndex, undefined, e);
    }
    if (this.backlog) return this.backlog.add(key, this.keyGroupOf, this.backlogWatermark ?? this.ctx.currentWatermark(), ts, input, value);
    return this.run(key, this.keyGroupOf(key), canonicalJson(key), value, ts, input, undefined);
  }

  /** The key's group, which must be one of this subtask's. */
  private readonly keyGroupOf = (key: unknown): number => {
    const keyGroup = assignToKeyGroup(key, this.ctx.runtime.maxParallelism);
    if (!this.ctx.keyGroupRange.contains(keyGroup)) {
      throw new WeirError(ErrorCode.StateAccess, `operator "${this.ctx.runtime.operatorName}" subtask ${this.ctx.runtime.subtaskIndex} got key ${JSON.stringify(key)} of key group ${keyGroup}, outside its range ${this.ctx.keyGroupRange}: the input is not partitioned by this key`);
    }
    return keyGroup;
  };

  /** Runs one record: through the async execution controller, or directly in sync mode. */
  private run(key: K, keyGroup: number, keyId: string, value: unknown, ts: number | undefined, input: number, watermark: number | undefined): MaybePromise {
    if (this.aec) return this.aec.submitRecord(keyId, key, new PendingRecord(this as unknown as KeyedProcessOperator<K, unknown, unknown>, key, keyGroup, keyId, value, ts, input, watermark));
    return this.call(key, keyGroup, keyId, value, ts, input, this.direct!, watermark);
  }

  /** The user function for one record, with its state requests going to `handler`. */
  call(key: K, keyGroup: number, keyId: string, value: unknown, ts: number | undefined, input: number, handler: StateRequestHandler, watermark: number | undefined): MaybePromise {
    const rc = new KeyedRecordContext<K, O>(this.ctx, this as KeyedProcessOperator<K, unknown, O>, key, keyGroup, keyId, handler, watermark);
    rc.timestamp = ts;
    let r: void | Promise<void>;
    try {
      r = this.dispatch ? this.dispatch(input, value as I, rc) : this.fn.processElement(value as I, rc);
    } catch (e) {
      throw userError(this.ctx, e, key);
    }
    return afterUserCallback(this.ctx, rc as RecordContext<unknown>, r, key);
  }

  /**
   * Backlog (FLIP-327): while the input is in backlog, records are buffered and sorted by key instead of
   * processed one by one; when it turns live, each key's records run in arrival order, every timer of
   * that key due at a record's arrival watermark firing just before it, as streaming would have done.
   */
  onAttributes(attributes: RecordAttributes): MaybePromise {
    const sorts = this.ctx.job.mode !== "streaming" && this.ctx.job.checkpointIntervalDuringBacklogMs === 0;
    if (attributes.isBacklog && sorts && !this.backlog) {
      this.backlog = new SortBuffer({ ...this.ctx.job.backlogSort, operator: this.ctx.runtime.operatorName }, this.ctx.currentWatermark(), this.arrivalFold());
      return this.ctx.output.emitAttributes(attributes);
    }
    if (!attributes.isBacklog && this.backlog) return this.drainBacklog().then(() => this.ctx.output.emitAttributes(attributes));
    return this.ctx.output.emitAttributes(attributes);
  }

  /**
   * Folding on arrival for a sorted-key fold (reduce), for keys whose state the backend knows is empty
   * while no record runs in the controller (one still running could write the key's state). During the
   * backlog nothing else writes it: its records are all in the buffer and reduce has no timers.
   */
  private arrivalFold(): ArrivalFold | undefined {
    const f = this.sortedKeyFold;
    const backend = this.backend;
    if (f === undefined || backend?.knownEmpty === undefined) return undefined;
    const operator = this.ctx.runtime.operatorUid;
    return {
      canFold: (key, keyGroup, keyId) => (this.aec === undefined || this.aec.inFlightRecords === 0) && backend.knownEmpty!(baseAddress(f.state.name, { operator, keyGroup, keyId, key })),
      fold: (acc, value, key) => {
        try { return f.fold(acc as I, value as I); } catch (e) { throw userError(this.ctx, e, key); }
      },
    };
  }

  get isSortingBacklog(): boolean { return this.backlog !== undefined; }

  private async drainBacklog(): Promise<void> {
    const buffer = this.backlog!;
    this.backlog = undefined;
    this.sortSpills += buffer.spills;
    // Records that came before the backlog began may still be in flight: they go first.
    await this.aec?.drain();
    for await (const keys of buffer.drain()) {
      if (this.sortedRunner) {
        await this.sortedRunner.run(keys.map((key) => this.keyTask(key)));
        continue;
      }
      for (const key of keys) {
        const p = this.keyTask(key)(this.direct!);
        if (p) await p;
      }
    }
    const w = this.backlogWatermark;
    this.backlogWatermark = undefined;
    if (w !== undefined) {
      const p = this.onWatermark(w);
      if (p) await p;
    }
  }

  /**
   * One key's sorted backlog: its records back to back over an in-memory overlay of its state, each of
   * its timers firing just before the first record whose arrival watermark passed it (a function with a
   * sorted-key form, reduce, takes them all at once instead). With async state, the keys of a drained
   * batch run concurrently, their reads batched (SortedKeysRunner); in sync mode one after another.
   */
  private keyTask(records: SortedKey): KeyTask {
    const { keyGroup, keyId, values } = records;
    const n = values.length;
    const key = this.selectors[records.input(0)]!(values[0]) as K;
    this.sortedRecords += records.count;
    if (records.folding && this.sortedKeyFold) return this.foldedKeyTask(records, key, this.sortedKeyFold);
    return this.sortedKey
      ? (handler: StateRequestHandler): MaybePromise => {
        const rc = new KeyedRecordContext<K, O>(this.ctx, this as KeyedProcessOperator<K, unknown, O>, key, keyGroup, keyId, handler, records.watermark(n - 1));
        rc.timestamp = records.timestamp(n - 1);
        let r: void | Promise<void>;
        try { r = this.sortedKey!(values as I[], rc); } catch (e) { throw userError(this.ctx, e, key); }
        return afterUserCallback(this.ctx, rc as RecordContext<unknown>, r, key);
      }
      : async (handler: StateRequestHandler): Promise<void> => {
        const overlay = new KeyStateOverlay(handler);
        for (let i = 0; i < n; i++) {
          const watermark = records.watermark(i);
          for (const timer of this.timers.eventTime.pollForKey(keyId, watermark)) {
            const p = this.fire(timer, overlay, watermark);
            if (p) await p;
          }
          const p = this.call(key, keyGroup, keyId, values[i], records.timestamp(i), records.input(i), overlay, watermark);
          if (p) await p;
        }
        await overlay.flush();
      };
  }

  /**
   * A key folded on arrival (ArrivalFold) started from state known to be empty, which nothing wrote
   * since: its folded value is the key's new state and its one result, with no read (what the sorted-key
   * function would compute from an empty state).
   */
  private foldedKeyTask(records: SortedKey, key: K, fold: SortedKeyFold<I>): KeyTask {
    const { keyGroup, keyId, values } = records;
    const n = values.length;
    return (handler: StateRequestHandler): MaybePromise => {
      const rc = new KeyedRecordContext<K, O>(this.ctx, this as KeyedProcessOperator<K, unknown, O>, key, keyGroup, keyId, handler, records.watermark(n - 1));
      rc.timestamp = records.timestamp(n - 1);
      let acc = values[0] as I;
      try { for (let i = 1; i < n; i++) acc = fold.fold(acc, values[i] as I); } catch (e) { throw userError(this.ctx, e, key); }
      return rc.state(fold.state).update(acc).then(
        () => { rc.collect(acc as unknown as O); return rc.settle(); },
        (e: unknown) => { throw userError(this.ctx, e, key); },
      );
    };
  }

  onWatermark(watermark: number): MaybePromise {
    if (this.backlog) {
      // Held back: downstream must not see it before the sorted records it follows.
      this.backlogWatermark = watermark;
      return;
    }
    const emit = () => this.ctx.output.emitWatermark(watermark);
    if (this.aec) {
      const next = (): TimerTask | undefined => {
        const timer = this.timers.eventTime.pollUpTo(watermark);
        return timer && { keyId: timer.keyId, key: timer.key, task: { run: (r: AsyncRecord) => this.fire(timer, r, watermark) } };
      };
      return this.aec.onWatermark(watermark, next, () => { void emit(); });
    }
    const fireDue = (): MaybePromise => {
      for (let timer = this.timers.eventTime.pollUpTo(watermark); timer; timer = this.timers.eventTime.pollUpTo(watermark)) {
        const p = this.fire(timer, this.direct!, watermark);
        if (p) return p.then(fireDue);
      }
      return emit();
    };
    return fireDue();
  }

  setInFlightBudget(records: number): void {
    this.aec?.setInFlightBudget(records);
  }

  onInputIdle(): void {
    this.aec?.inputIdle();
  }

  pendingWork(): number {
    return this.aec?.inFlightRecords ?? 0;
  }

  endInput(): MaybePromise {
    if (this.backlog) return this.drainBacklog();
    return this.aec?.drain();
  }

  prepareSnapshot(): MaybePromise {
    if (this.backlog) {
      throw new WeirError(ErrorCode.Checkpoint, `operator "${this.ctx.runtime.operatorName}" is sorting its backlog: no checkpoint until the backlog is processed (checkpointIntervalDuringBacklogMs is 0)`);
    }
    // Records in flight may still change timers: store them once every record has finished.
    const drained = this.aec?.drain();
    return drained ? drained.then(() => this.storeTimers()) : this.storeTimers();
  }

  /** Timers are keyed state: the key groups whose timers changed go into the backend before it is captured. */
  private storeTimers(): MaybePromise {
    return writeChangedTimers(this.timers, this.backend!, this.ctx.runtime.operatorUid, this.ctx.runtime.operatorName);
  }

  timerServiceFor(rc: KeyedRecordContext<unknown, unknown>): TimerService {
    return new KeyTimers(this.timers, rc, (ts) => this.scheduleProcessingTimer(ts));
  }

  close(): MaybePromise {
    if (this.processingTimer !== undefined) this.ctx.clock.clearTimeout(this.processingTimer);
    if (this.stallTimer !== undefined) clearInterval(this.stallTimer as NodeJS.Timeout);
    this.aec?.close();
    return this.fn.close?.();
  }

  metrics(): Record<string, number> {
    return {
      recordsIn: this.recordsIn,
      eventTimers: this.timers.eventTime.size,
      processingTimers: this.timers.processingTime.size,
      restoredEventTimers: this.restoredTimers.event,
      restoredProcessingTimers: this.restoredTimers.processing,
      timersFired: this.timersFired,
      sortedRecords: this.sortedRecords,
      sortSpills: this.sortSpills + (this.backlog?.spills ?? 0),
      backlogBuffered: this.backlog?.size ?? 0,
      ...(this.aec ? { ...this.aec.metrics(), stalled: this.stalled ? 1 : 0 } : {}),
      ...this.stateCacheMetrics(),
      ...this.extraMetrics?.(),
    };
  }

  /** The keyed state backend's cache, for `weir status` (read when status is asked, not per record). */
  private stateCacheMetrics(): Record<string, number> {
    if (this.backend === undefined) return {};
    const m = this.backend.metrics();
    return {
      cacheEntries: m.cacheEntries, cacheBytes: m.cacheBytes, cacheHits: m.hits, cacheMisses: m.misses,
      dirtyEntries: m.dirtyEntries, dirtyBytes: m.dirtyBytes, cacheEvictions: m.evictions, stateFlushes: m.flushes,
    };
  }

  private wrap(e: unknown, key: unknown): unknown {
    if (e instanceof WeirError) return e;
    return new UserFunctionError(this.ctx.runtime.operatorName, this.ctx.runtime.subtaskIndex, key, e);
  }

  private fire(timer: Timer, handler: StateRequestHandler, watermark: number | undefined): MaybePromise {
    const onTimer = this.fn.onTimer;
    if (!onTimer) return;
    this.timersFired++;
    const rc = new KeyedRecordContext<K, O>(this.ctx, this as KeyedProcessOperator<K, unknown, O>, timer.key as K, timer.keyGroup, timer.keyId, handler, watermark);
    rc.timestamp = timer.timestamp;
    return runUserCallback(this.ctx, rc as RecordContext<unknown>, () => onTimer.call(this.fn, timer.timestamp, rc), timer.key);
  }

  private scheduleProcessingTimer(ts: number): void {
    if (ts >= this.processingTimerAt) return;
    if (this.processingTimer !== undefined) this.ctx.clock.clearTimeout(this.processingTimer);
    this.processingTimerAt = ts;
    this.processingTimer = this.ctx.clock.setTimeout(() => {
      this.processingTimer = undefined;
      this.processingTimerAt = Number.POSITIVE_INFINITY;
      this.ctx.enqueue(() => this.fireProcessingTimers());
    }, Math.max(0, ts - this.ctx.clock.now()));
  }

  private fireProcessingTimers(): MaybePromise {
    const now = this.ctx.clock.now();
    const timer = this.timers.processingTime.pollUpTo(now);
    if (!timer) {
      const next = this.timers.processingTime.peek();
      if (next) this.scheduleProcessingTimer(next.timestamp);
      return;
    }
    const p = this.aec
      ? this.aec.submitRecord(timer.keyId, timer.key, { run: (r) => this.fire(timer, r, r.watermark) })
      : this.fire(timer, this.direct!, undefined);
    if (p) return p.then(() => this.fireProcessingTimers());
    return this.fireProcessingTimers();
  }

  /** A subtask with records in flight and none finishing for `timeoutMs` says so (it does not fail). */
  private watchForStalls(timeoutMs: number): void {
    let finished = -1;
    let since = this.ctx.clock.now();
    const t = setInterval(() => {
      const aec = this.aec!;
      const now = this.ctx.clock.now();
      if (aec.finishedRecords !== finished || aec.inFlightRecords === 0) {
        finished = aec.finishedRecords;
        since = now;
      }
      const stuck = aec.inFlightRecords > 0 && now - since >= timeoutMs;
      if (stuck && !this.stalled) {
        this.ctx.log(`operator "${this.ctx.runtime.operatorName}" subtask ${this.ctx.runtime.subtaskIndex}: ${aec.inFlightRecords} records in flight, none finished for ${timeoutMs >= 1000 ? `${Math.round(timeoutMs / 1000)} s` : `${timeoutMs} ms`} (is the state backend answering?)`);
      }
      this.stalled = stuck;
    }, Math.min(timeoutMs / 2, 5000));
    t.unref();
    this.stallTimer = t;
  }
}

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
    create: (ctx) => new KeyedProcessOperator<K, I, O>(ctx, fn, selectors, dispatch, undefined, sortedKey, sortedKeyFold),
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

/** A record waiting for (or running in) the async execution controller: a task object, not a closure. */
class PendingRecord<K> implements RecordTask {
  constructor(
    private readonly op: KeyedProcessOperator<K, unknown, unknown>,
    private readonly key: K,
    private readonly keyGroup: number,
    private readonly keyId: string,
    private readonly value: unknown,
    private readonly ts: number | undefined,
    private readonly input: number,
    private readonly watermark: number | undefined,
  ) {}
  run(r: AsyncRecord): MaybePromise {
    return this.op.call(this.key, this.keyGroup, this.keyId, this.value, this.ts, this.input, r, this.watermark ?? r.watermark);
  }
}
