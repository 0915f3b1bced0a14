// Keyed operators: KeyedProcessFunction (and reduce on top of it). Each record's key selects its key
// group and state scope; timers are per key. One dispatch (processElement): a record is buffered while
// the backlog is sorted (backlog/drain.ts), else it goes to the execution strategy chosen at open: with
// `asyncState.enabled` (the default) the AsyncExecutionController (async-execution.ts), many in flight,
// state requests batched, per-key order kept; with it off, one record at a time (sync-execution.ts).

import { sortsBacklog } from "../contracts/job-options.ts";
import { assignToKeyGroup } from "../../state/key-groups.ts";
import type { KeyedStateBackend, StateRequestHandler } from "../../state/contracts.ts";
import type { KeyedContext, KeyedProcessFunction, KeySelector, TimerService } from "../contracts/functions.ts";
import { ErrorCode, UserFunctionError, WeirError } from "../core/errors.ts";
import type { MaybePromise, OperatorContext, StreamOperator } from "../contracts/operators.ts";
import { afterUserCallback, userError, userHook, type RecordContext } from "../operators/basic.ts";
import { isPromise } from "../operators/chain-util.ts";
import { MAX_WATERMARK, type RecordAttributes } from "../transport/frames.ts";
import { FinalTimerWatch } from "./timers/final-timer-watch.ts";
import { TIMERS_BETWEEN_TURNS, nextTurn } from "./timers/turns.ts";
import { AsyncExecution } from "./async-execution.ts";
import { BacklogSort, type BacklogHost, type SortedKeyFold, type SortedKeyFunction } from "./backlog/drain.ts";
import type { KeyedExecution } from "./execution.ts";
import { KeySlotTable, slotsPerGeneration, type KeySlot } from "./key-slots.ts";
import { KeyedRecordContext, KeyTimers, TIMER_INPUT } from "./record-context.ts";
import { SyncExecution } from "./sync-execution.ts";
import { InternalTimerService, type Timer } from "./timers/timer-service.ts";
import { restoreTimers, writeChangedTimers } from "./timers/timer-state.ts";

/** Node's timers reach at most 2^31 − 1 ms ahead; a longer delay fires after 1 ms. */
const MAX_TIMER_DELAY_MS = 2 ** 31 - 1;

export type { SortedKeyFold, SortedKeyFunction } from "./backlog/drain.ts";

export type Dispatch<K, I, O> = (input: number, value: I, ctx: KeyedContext<K, O>) => void | Promise<void>;

export class KeyedProcessOperator<K, I, O> implements StreamOperator, BacklogHost {
  private backend: KeyedStateBackend | undefined;
  private execution: KeyedExecution | undefined;
  private backlog: BacklogSort | undefined;
  private readonly slots: KeySlotTable;
  readonly timers = new InternalTimerService();
  private processingTimer: unknown;
  private processingTimerAt = Number.POSITIVE_INFINITY;
  private lastWatermark = Number.NEGATIVE_INFINITY;
  private recordsIn = 0;
  private timersFired = 0;
  private restoredTimers = { event: 0, processing: 0 };
  /** The backend's cache hits and misses when the timers were read back at a restore (not the job's reads); undefined while it reads them. */
  private restoreReads: { hits: number; misses: number } | undefined = { hits: 0, misses: 0 };
  /** Contexts of finished records, for the next ones (see record-context.ts). */
  private readonly freeContexts: KeyedRecordContext<unknown, unknown>[] = [];
  /**
   * As many as may be in flight (async mode): a smaller pool (it was 64) made a new context, and new
   * continuations, for most records once admission grew past it (bench/prof-keyed.ts heap with 128
   * admitted: 3.7 µs CPU per record instead of 0.9).
   */
  private maxFreeContexts = 0;

  constructor(
    readonly ctx: OperatorContext,
    private readonly fn: KeyedProcessFunction<K, I, O>,
    private readonly selectors: ReadonlyArray<KeySelector<any, K>>,
    private readonly dispatch: Dispatch<K, I, O> | undefined,
    private readonly extraMetrics?: () => Record<string, number>,
    readonly sortedKey?: SortedKeyFunction<unknown, unknown, unknown>,
    readonly sortedKeyFold?: SortedKeyFold<unknown>,
  ) {
    this.slots = new KeySlotTable(ctx.runtime.operatorUid, this.keyGroupOf, slotsPerGeneration(ctx.job.stateBackend, ctx.job.state.cacheMaxEntries));
  }

  async open(): Promise<void> {
    const backend = await this.ctx.stateBackend();
    this.backend = backend;
    const a = this.ctx.job.asyncState;
    this.maxFreeContexts = a.enabled ? a.inFlightRecordsLimit : 0;
    this.execution = a.enabled
      ? new AsyncExecution(backend, a, this.ctx, this, (e, key) => this.ctx.fail(this.wrap(e, key)))
      : new SyncExecution(backend, this);
    this.backlog = new BacklogSort(this, backend, this.execution);
    // Batch mode (Flink's BATCH): the whole input is sorted by key and runs at its end, key by key.
    if (this.ctx.job.mode === "batch") this.backlog.begin(true);
    if (this.ctx.restoring) {
      const { operatorUid, operatorName } = this.ctx.runtime;
      // A scrape meanwhile would count these reads, and the next one not: a counter going down at /metrics.
      this.restoreReads = undefined;
      this.restoredTimers = await restoreTimers(this.timers, backend, operatorUid, operatorName, this.ctx.keyGroupRange);
      // The hit ratio is the job's: reading back a timer entry per key group is no miss of its records.
      const m = backend.metrics();
      this.restoreReads = { hits: m.hits, misses: m.misses };
      // Processing-time timers whose time passed while the job was down fire at once (as in Flink).
      const next = this.timers.processingTime.peek();
      if (next) this.scheduleProcessingTimer(next.timestamp);
    }
    await userHook(this.ctx, () => this.fn.open?.(this.ctx.runtime));
  }

  /** The one dispatch of a record: into the backlog's sort buffer, or to the execution strategy. */
  processElement(value: unknown, ts: number | undefined, input: number): MaybePromise {
    this.recordsIn++;
    const key = this.keyOf(value, input);
    if (this.backlog!.active) return this.backlog!.add(key, value, ts, input);
    const slot = this.slots.slotFor(key);
    const free = this.freeContexts.pop();
    return this.execution!.record(free !== undefined ? free.reset(slot, value, ts, input) : new KeyedRecordContext(this.ctx, this, slot, value, ts, input, undefined));
  }

  /** Closed: no more timers fire (a batch key's, or those a watermark made due). */
  closed = false;

  /** How this subtask's log lines name it. */
  get where(): string { return `operator "${this.ctx.runtime.operatorName}" subtask ${this.ctx.runtime.subtaskIndex}`; }

  /** The key's slot: its identity, lock and state handles (see key-slots.ts). */
  slotFor(key: unknown): KeySlot {
    return this.slots.slotFor(key);
  }

  slotOnce(key: unknown, keyId: string, keyGroup: number): KeySlot {
    return this.slots.slotOnce(key, keyId, keyGroup);
  }

  oldestBusySlot(): KeySlot | undefined { return this.slots.oldestBusy(); }

  keyOf(value: unknown, input: number): K {
    try { return this.selectors[input]!(value); } catch (e) {
      throw new UserFunctionError(`${this.ctx.runtime.operatorName} (key selector)`, this.ctx.runtime.subtaskIndex, undefined, e);
    }
  }

  /** The key's group, which must be one of this subtask's. */
  readonly keyGroupOf = (key: unknown): number => {
    const keyGroup = assignToKeyGroup(key, this.ctx.runtime.maxParallelism);
    if (!this.ctx.keyGroupRange.contains(keyGroup)) {
      throw new WeirError(ErrorCode.StateAccess, `operator "${this.ctx.runtime.operatorName}" subtask ${this.ctx.runtime.subtaskIndex} got key ${JSON.stringify(key)} of key group ${keyGroup}, outside its range ${this.ctx.keyGroupRange}: the input is not partitioned by this key`);
    }
    return keyGroup;
  };

  /** A context for `slot` whose state requests go to `handler` (the sorted drain's). */
  context(slot: KeySlot, handler: StateRequestHandler, value: unknown, ts: number | undefined, input: number, watermark: number | undefined): KeyedRecordContext<unknown, unknown> {
    slot.handler = handler;
    return new KeyedRecordContext<unknown, unknown>(this.ctx, this, slot, value, ts, input, watermark);
  }

  timerContext(timer: Timer, watermark: number | undefined, slot = this.slots.slotFor(timer.key), processingTime = false): KeyedRecordContext<unknown, unknown> {
    // ctx.timestamp is the timer's time in either domain (Flink's OnTimerContext.timestamp()); a
    // processing-time timer's output carries none.
    const rc = new KeyedRecordContext<unknown, unknown>(this.ctx, this, slot, timer.timestamp, timer.timestamp, TIMER_INPUT, watermark);
    rc.erasesTimestamp = processingTime;
    return rc;
  }

  pollDueTimer(keyId: string, upTo: number): Timer | undefined { return this.timers.eventTime.pollFirstForKey(keyId, upTo); }

  /** The user function for `rc`: processElement (through the co-function dispatch), or onTimer for a timer. */
  invoke(rc: KeyedRecordContext<unknown, unknown>): void | Promise<void> {
    if (rc.input === TIMER_INPUT) {
      const onTimer = this.fn.onTimer;
      if (!onTimer) return;
      this.timersFired++;
      return onTimer.call(this.fn, rc.value as number, rc as KeyedRecordContext<K, O>);
    }
    return this.dispatch ? this.dispatch(rc.input, rc.value as I, rc as KeyedRecordContext<K, O>) : this.fn.processElement(rc.value as I, rc as KeyedRecordContext<K, O>);
  }

  /** `rc` run to its end, one at a time (sync mode, timers of sorted drains): errors name the operator and the key. */
  call(rc: KeyedRecordContext<unknown, unknown>): MaybePromise {
    return afterUserCallback(this.ctx, rc as RecordContext<unknown>, this.invokeNamed(rc), rc.key);
  }

  invokeNamed(rc: KeyedRecordContext<unknown, unknown>): Promise<void> | undefined {
    let r: void | Promise<void>;
    try {
      r = this.invoke(rc);
    } catch (e) {
      throw userError(this.ctx, e, rc.key);
    }
    return isPromise(r) ? r as Promise<void> : undefined;
  }

  /** Backlog (FLIP-327): sorting begins when the input turns to backlog and drains when it turns live. */
  onAttributes(attributes: RecordAttributes): MaybePromise {
    const backlog = this.backlog!;
    if (backlog.batch) return this.ctx.output.emitAttributes(attributes);
    const sorts = sortsBacklog(this.ctx.job);
    if (attributes.isBacklog && sorts && !backlog.active) {
      backlog.begin();
      return this.ctx.output.emitAttributes(attributes);
    }
    if (!attributes.isBacklog && backlog.active) return backlog.drain().then(() => this.ctx.output.emitAttributes(attributes));
    return this.ctx.output.emitAttributes(attributes);
  }

  get isSortingBacklog(): boolean { return this.backlog?.active === true; }

  onWatermark(watermark: number): MaybePromise {
    this.lastWatermark = watermark;
    if (this.backlog!.hold(watermark)) return;
    const queue = this.timers.eventTime;
    const watch = watermark === MAX_WATERMARK ? new FinalTimerWatch(queue.size, (line) => this.ctx.log(line), this.where) : undefined;
    const due = {
      // Closed (cancelled, failed): timers still due stop firing (a timer chain would run on for ever).
      peek: () => { const t = this.closed ? undefined : queue.peek(); return t !== undefined && t.timestamp <= watermark ? t : undefined; },
      poll: () => {
        if (this.closed) return undefined;
        const t = queue.pollUpTo(watermark);
        if (t !== undefined) watch?.firing(t.key);
        return t;
      },
    };
    return this.execution!.watermark(watermark, due, () => this.ctx.output.emitWatermark(watermark));
  }

  setInFlightBudget(records: number): void {
    this.execution?.setInFlightBudget(records);
  }

  onInputIdle(): void {
    this.execution?.inputIdle();
  }

  pendingWork(): number {
    return this.execution?.inFlightRecords ?? 0;
  }

  endInput(): MaybePromise {
    const drained = this.backlog!.active ? this.backlog!.drain() : this.execution!.drain();
    return drained ? drained.then(() => this.notePendingProcessingTimers()) : this.notePendingProcessingTimers();
  }

  /**
   * At the real end of input (the final watermark came; a stop sends none and its savepoint keeps them),
   * processing-time timers still pending do not fire, as in Flink's streaming mode: said, not silent.
   */
  private notePendingProcessingTimers(): void {
    const dropped = this.backlog!.droppedTimers;
    if (dropped > 0) {
      this.ctx.log(`${this.where}: ${dropped} timer(s) registered at the end of a key's input did not fire: in mode "batch" processing time does not pass there, and a timer registering the next one would fire for ever (Flink's batch mode drops them too)`);
    }
    const pending = this.timers.processingTime.size;
    if (this.lastWatermark !== MAX_WATERMARK || pending === 0) return;
    this.ctx.log(`${this.where}: the input ended with ${pending} processing-time timer(s) pending (processing-time windows too): they do not fire, as in Flink's streaming mode (mode "batch" fires them)`);
  }

  prepareSnapshot(): MaybePromise {
    if (this.backlog!.active) {
      throw new WeirError(ErrorCode.Checkpoint, `operator "${this.ctx.runtime.operatorName}" is sorting its backlog: no checkpoint until the backlog is processed (checkpointIntervalDuringBacklogMs is 0)`);
    }
    // Records in flight may still change timers: store them once every record has finished.
    const drained = this.execution!.drain();
    return drained ? drained.then(() => this.storeTimers()) : this.storeTimers();
  }

  /** Timers are keyed state: the key groups whose timers changed go into the backend before it is captured. */
  private storeTimers(): MaybePromise {
    return writeChangedTimers(this.timers, this.backend!, this.ctx.runtime.operatorUid, this.ctx.runtime.operatorName);
  }

  reuse(rc: KeyedRecordContext<unknown, unknown>): void {
    if (rc.input === TIMER_INPUT || this.freeContexts.length >= this.maxFreeContexts) return;
    rc.value = undefined; // a pooled context does not keep its last record alive
    this.freeContexts.push(rc);
  }

  timerServiceFor(slot: KeySlot): TimerService {
    return new KeyTimers(this.timers, slot, (ts) => this.scheduleProcessingTimer(ts));
  }

  close(): MaybePromise {
    this.closed = true;
    if (this.processingTimer !== undefined) this.ctx.clock.clearTimeout(this.processingTimer);
    this.execution?.close();
    const removed = this.backlog?.close();
    const closed = userHook(this.ctx, () => this.fn.close?.());
    return removed ? Promise.all([removed, closed]).then(() => undefined) : closed;
  }

  metrics(): Record<string, number> {
    return {
      recordsIn: this.recordsIn,
      eventTimers: this.timers.eventTime.size,
      processingTimers: this.timers.processingTime.size,
      restoredEventTimers: this.restoredTimers.event,
      restoredProcessingTimers: this.restoredTimers.processing,
      timersFired: this.timersFired,
      ...(this.backlog?.metrics() ?? { sortedRecords: 0, sortSpills: 0, backlogBuffered: 0 }),
      ...this.execution?.metrics(),
      ...this.stateCacheMetrics(),
      ...this.extraMetrics?.(),
    };
  }

  /** The keyed state backend's cache, for `weir status` (read when status is asked, not per record). */
  private stateCacheMetrics(): Record<string, number> {
    if (this.backend === undefined) return {};
    const m = this.backend.metrics();
    const restore = this.restoreReads ?? m;
    return {
      cacheEntries: m.cacheEntries, cacheBytes: m.cacheBytes, cacheHits: m.hits - restore.hits, cacheMisses: m.misses - restore.misses,
      dirtyEntries: m.dirtyEntries, dirtyBytes: m.dirtyBytes, cacheEvictions: m.evictions, stateFlushes: m.flushes,
      stateRemoteReads: m.remoteReads, stateRemoteWrites: m.remoteWrites, stateWritesFenced: m.writesFenced,
    };
  }

  private wrap(e: unknown, key: unknown): unknown {
    // weir's own errors say what they are; one about the graph a record met (a window's record without a
    // timestamp) does not say which operator met it, as sync execution's userError does.
    if (e instanceof WeirError && e.code !== ErrorCode.InvalidGraph) return e;
    return new UserFunctionError(this.ctx.runtime.operatorName, this.ctx.runtime.subtaskIndex, key, e);
  }

  /** A timer further ahead than Node's timers reach (2^31 − 1 ms, ~24.8 days) wakes up then and is scheduled again (it fired at once, ever again, unclamped). */
  private scheduleProcessingTimer(ts: number): void {
    if (ts >= this.processingTimerAt) return;
    if (this.processingTimer !== undefined) this.ctx.clock.clearTimeout(this.processingTimer);
    this.processingTimerAt = ts;
    this.processingTimer = this.ctx.clock.setTimeout(() => {
      this.processingTimer = undefined;
      this.processingTimerAt = Number.POSITIVE_INFINITY;
      this.ctx.enqueue(() => this.fireProcessingTimers());
    }, Math.min(MAX_TIMER_DELAY_MS, Math.max(0, ts - this.ctx.clock.now())));
  }

  /** Due timers one after another: a loop while each completes at once (recursing overflowed the stack at ~10k). */
  private fireProcessingTimers(): MaybePromise {
    for (let fired = 0; ; fired++) {
      if (this.closed) return;
      // A turn for the event loop now and then: many may be due at once (turns.ts).
      if (fired === TIMERS_BETWEEN_TURNS) return nextTurn().then(() => this.fireProcessingTimers());
      const timer = this.timers.processingTime.pollUpTo(this.ctx.clock.now());
      if (!timer) {
        const next = this.timers.processingTime.peek();
        if (next) this.scheduleProcessingTimer(next.timestamp);
        return;
      }
      const p = this.execution!.processingTimer(timer);
      if (p) return p.then(() => this.fireProcessingTimers());
    }
  }
}
