// AsyncExecutionController (FLIP-425): many records of a keyed subtask in flight at once, their state
// requests batched, yet every key's records processed in arrival order and watermarks, timers and
// checkpoints as correct as in synchronous execution.
//
// - A record context per in-flight record, reference counted: one reference for the user callback, one
//   per state request it has outstanding; the record finishes when the count reaches zero.
// - Key locks (key-lock.ts): a record whose key is in flight waits before processElement starts (strict
//   order). The lock lives on the record's per-key object, so taking it is two field accesses.
// - The active buffer: state requests go to the backend as one batch at `bufferSize` requests, after
//   `bufferTimeoutMs`, or at once when no more input is coming (idle input, in-flight limit, draining).
//   A request that needs nothing remote (heap state, a cached KV entry) is answered at once instead.
// - `inFlightRecordsLimit`: at the limit (or below it while records finish at once or state batches
//   queue: admission.ts) `submitRecord` returns a promise, so the subtask stops taking input and its
//   credits backpressure.
// - Watermark epochs: see epoch-manager.ts.

import { NOT_APPLIED, type KeyedStateBackend, type PendingStateRequest, type StateRequest } from "../../../state/contracts.ts";
import { answered } from "../../../state/handlers/answer.ts";
import type { MaybePromise, OperatorContext } from "../../contracts/operators.ts";
import { TIMERS_BETWEEN_TURNS, nextTurn } from "../timers/turns.ts";
import { Admission } from "./admission.ts";
import { BufferedRequest } from "./buffered-request.ts";
import { EpochManager, type Epoch } from "./epoch-manager.ts";
import { KeyLocks, type KeyLock } from "./key-lock.ts";
import type { AsyncMetrics, ControlledRecord, RecordContinuations } from "./controlled-record.ts";
import { AsyncRecord, isTimerTask, type EarlierTimer, type NextTimer, type RecordTask } from "./async-record.ts";

type Clock = OperatorContext["clock"];

export interface AsyncExecutionOptions {
  readonly bufferSize: number;
  readonly bufferTimeoutMs: number;
  readonly inFlightRecordsLimit: number;
  readonly watermarkMode: "strict" | "out-of-order";
}

export { AsyncRecord, type EarlierTimer, type NextTimer, type RecordTask, type TimerTask } from "./async-record.ts";

export class AsyncExecutionController {
  private readonly locks = new KeyLocks();
  /** Records waiting for their key, and keys with records waiting. */
  private blockedRecords = 0;
  private blockedKeys = 0;
  private readonly epochs = new EpochManager();
  private buffer: PendingStateRequest[] = [];
  private bufferTimer: unknown;
  private flushScheduled = false;
  private inFlight = 0;
  /** Admits up to `inFlightRecordsLimit`, or less while a debloating subtask asks for less (setInFlightBudget). */
  private readonly admission: Admission;
  private readonly releaseRecord = (r: ControlledRecord): void => this.release(r);
  private capacityWaiters: Array<() => void> = [];
  /** Due timers waiting for a record of their key to finish (whenReleased). */
  private readonly keyWaiters = new Map<KeyLock, Array<() => void>>();
  private drainWaiters: Array<() => void> = [];
  private strictWaiter: (() => void) | undefined;
  /** The subtask is feeding records: requests may wait for more company in the buffer. */
  private inputActive = false;
  private batches = 0;
  private batchedRequests = 0;
  private maxInFlight = 0;
  private currentWatermark = Number.MIN_SAFE_INTEGER;
  /** The last watermark whose epoch completed (its timers all fired, the watermark emitted). */
  private completedWatermark = Number.MIN_SAFE_INTEGER;
  /** Records finished so far (stall detection compares it over time: no clock read per record). */
  finishedRecords = 0;
  /** Advanced by the stall watch; a key's lock is stamped with it as a record of the key starts (start()). */
  tick = 0;

  constructor(
    private readonly backend: KeyedStateBackend,
    private readonly options: AsyncExecutionOptions,
    private readonly clock: Clock,
    private readonly onError: (error: unknown, record: ControlledRecord) => void,
    /**
     * Times state batches' round trips, which tell admission whether batches queue (admission.ts): real
     * time, not `clock` (a ManualClock moves processing time only); a test of admission injects its own.
     */
    private readonly roundTripNow: () => number = () => performance.now(),
    /** Out-of-order mode's: see start(). */
    private readonly earlierTimer?: EarlierTimer,
  ) {
    this.admission = new Admission(options.inFlightRecordsLimit, {
      waiting: () => this.capacityWaiters.length > 0,
      inFlight: () => this.inFlight,
      grew: () => this.wakeCapacityWaiters(),
    });
  }

  get inFlightRecords(): number { return this.inFlight; }

  /**
   * Admits no more than `records` in flight (never more than `inFlightRecordsLimit`): what the subtask
   * gets through in about its debloating target, so a checkpoint's drain of records in flight, and the
   * output they emit ahead of its barrier, stay short when the output is backpressured.
   */
  setInFlightBudget(records: number): void {
    this.admission.setLimit(Math.max(1, Math.min(this.options.inFlightRecordsLimit, Math.floor(records))));
    this.wakeCapacityWaiters();
  }

  /**
   * Accepts a record (or timer) of `keyId`; `task` runs once the key is free. Returns a promise when the
   * caller must wait before submitting more (in-flight limit, or a strict-mode watermark draining).
   */
  submitRecord(keyId: string, key: unknown, task: RecordTask, epoch?: Epoch): MaybePromise {
    return this.submit(new AsyncRecord(this, keyId, task, key, this.locks.lockFor(keyId)), epoch);
  }

  /** submitRecord for a record the caller built (its lock on the caller's per-key object). */
  submit(r: ControlledRecord, epoch?: Epoch): MaybePromise {
    this.inputActive = true;
    if (r.watermark === undefined) r.watermark = this.currentWatermark;
    r.epoch = this.epochs.enter(epoch);
    const inFlight = ++this.inFlight;
    if (inFlight > this.maxInFlight) this.maxInFlight = inFlight;
    const lock = r.lock;
    if (!lock.busy) {
      lock.busy = true;
      this.start(r);
    } else {
      const waiting = lock.waiting;
      if (waiting === undefined) lock.waiting = [r];
      else waiting.push(r);
      if (lock.waiting!.length === 1) this.blockedKeys++;
      this.blockedRecords++;
    }
    if (inFlight >= this.admission.current) return this.waitForCapacity();
    if (this.options.watermarkMode === "strict" && this.epochs.pending > 0 && epoch === undefined) return this.waitForEpochs();
  }

  /**
   * Fast path (async mode's): a request that needs nothing remote (the heap's, a cached KV entry's) is
   * answered by the backend at once instead of waiting in the buffer for a batch, which only pays for
   * remote reads (FLIP-425's async API run synchronously on in-memory state); records, key order, the
   * in-flight limit and watermark epochs are governed the same way. Only when none of the record's
   * requests waits in a batch (they apply in issue order); the callback, still running, holds the record
   * until it is done with the answer. Else NOT_APPLIED.
   */
  tryNow(record: ControlledRecord, request: StateRequest): unknown {
    return record.refs === 1 ? this.backend.tryNow(request) : NOT_APPLIED;
  }

  /** The continuations of a record object that is reused for later records (made once, not per record). */
  continuationsFor(r: ControlledRecord): RecordContinuations {
    return { ran: () => this.step(r, false), settled: () => this.release(r), failed: (e: unknown) => this.onError(e, r) };
  }

  /** A state request of `record`: answered at once when it can be (see tryNow), else into the active buffer. */
  request(record: ControlledRecord, request: StateRequest): Promise<unknown> {
    if (record.refs === 1) {
      const answer = answered(this.backend, request);
      if (answer !== undefined) return answer;
    }
    record.refs++;
    const pending = new BufferedRequest(this.releaseRecord, record, request);
    return new Promise((resolve, reject) => {
      pending.settle = resolve;
      pending.fail = reject;
      this.buffer.push(pending);
      if (this.buffer.length >= this.options.bufferSize) this.flush();
      else if (!this.inputActive) this.flushSoon();
      else if (this.bufferTimer === undefined) {
        this.bufferTimer = this.clock.setTimeout(() => { this.bufferTimer = undefined; this.flush(); }, this.options.bufferTimeoutMs);
      }
    });
  }

  /** The subtask has no more input right now: send what is buffered instead of waiting for company. */
  inputIdle(): void {
    this.inputActive = false;
    if (this.buffer.length > 0) this.flush();
  }

  /**
   * A watermark arrived. Once every earlier record finished, the timers it makes due fire (`nextTimer`
   * is polled until it returns undefined; each timer runs as a record of the closing epoch, respecting
   * key order and the in-flight limit), then `emit` forwards the watermark. In strict mode later records
   * wait for all of that; in out-of-order mode they go ahead.
   */
  onWatermark(watermark: number, nextTimer: NextTimer, emit: () => void): MaybePromise {
    this.currentWatermark = watermark;
    this.epochs.close(watermark, (epoch) => { void this.fireTimers(epoch, nextTimer); }, () => {
      this.completedWatermark = watermark;
      emit();
      if (this.epochs.pending === 0) this.wakeStrict();
    });
    this.inputActive = false;
    if (this.buffer.length) this.flush();
    if (this.options.watermarkMode === "strict" && this.epochs.pending > 0) return this.waitForEpochs();
  }

  /** Runs due timers as records of `epoch`, holding the epoch open until all are submitted. */
  private async fireTimers(epoch: Epoch, nextTimer: NextTimer): Promise<void> {
    this.epochs.enter(epoch);
    try {
      for (let t = nextTimer(), fired = 0; t; t = nextTimer()) {
        if (t instanceof Promise) {
          // The timer's key is busy: what it runs may need its state requests sent to finish.
          this.inputActive = false;
          if (this.buffer.length) this.flush();
          await t;
          continue;
        }
        const p = isTimerTask(t) ? this.submitRecord(t.keyId, t.key, t.task, epoch) : this.submit(t, epoch);
        if (p) await p;
        if (++fired % TIMERS_BETWEEN_TURNS === 0) {
          // Records (and what they sent) may go on meanwhile, as when a timer waits for remote state.
          this.inputActive = false;
          if (this.buffer.length) this.flush();
          await nextTurn();
        }
      }
    } catch (e) {
      this.onError(e, new AsyncRecord(this, "", { run: () => {} }, undefined, { busy: false, waiting: undefined, startedTick: 0 }));
    } finally {
      this.inputActive = false;
      if (this.buffer.length) this.flush();
      this.epochs.leave(epoch);
    }
  }

  /** Resolves once a record of `lock`'s key finishes (the next may have started). */
  whenReleased(lock: KeyLock): Promise<void> {
    return new Promise((resolve) => {
      const waiters = this.keyWaiters.get(lock);
      if (waiters === undefined) this.keyWaiters.set(lock, [resolve]);
      else waiters.push(resolve);
    });
  }

  /** Resolves when every record accepted so far (and every pending watermark) has finished. */
  drain(): Promise<void> {
    this.inputActive = false;
    if (this.buffer.length) this.flush();
    if (this.inFlight === 0 && this.epochs.pending === 0) return Promise.resolve();
    return new Promise((resolve) => this.drainWaiters.push(resolve));
  }

  metrics(): AsyncMetrics {
    return {
      inFlightRecords: this.inFlight,
      activeBufferSize: this.buffer.length,
      blockingBufferSize: this.blockedRecords,
      blockedKeys: this.blockedKeys,
      batchesSent: this.batches,
      meanBatchSize: this.batches ? Math.round((this.batchedRequests / this.batches) * 10) / 10 : 0,
      batchedRequests: this.batchedRequests,
      maxInFlightSeen: this.maxInFlight,
      admittedInFlight: this.admission.current,
      pendingWatermarks: this.epochs.pending,
    };
  }

  close(): void {
    if (this.bufferTimer !== undefined) this.clock.clearTimeout(this.bufferTimer);
    this.bufferTimer = undefined;
  }

  /**
   * Out-of-order mode: a record that arrived after a watermark whose timers have not all fired yet sees
   * that watermark, so its key's timers due at it fire first, each as a record of the epoch whose watermark
   * makes it due (taking the key; the record waits at the head of the key's queue), as in synchronous
   * execution. Else a window's record would find its window past the watermark yet not fired (a late
   * firing, then the timer's: the window fired twice).
   */
  private start(r: ControlledRecord): void {
    r.lock.startedTick = this.tick;
    const w = r.watermark;
    if (this.earlierTimer !== undefined && w !== undefined && w > this.completedWatermark && this.epochs.pending > 0) {
      const due = this.earlierTimer(r, w);
      if (due !== undefined) {
        const t = due.record;
        t.epoch = this.epochs.enter(this.epochs.closedFor(due.timestamp));
        t.watermark = t.epoch.watermark;
        if (++this.inFlight > this.maxInFlight) this.maxInFlight = this.inFlight;
        const waiting = (r.lock.waiting ??= []);
        waiting.unshift(r);
        if (waiting.length === 1) this.blockedKeys++;
        this.blockedRecords++;
        this.step(t, true);
        return;
      }
    }
    this.step(r, true);
  }

  /**
   * `running`: starts the record's function; once it is done, its settle (output through); once that is
   * done, the record's own reference ends.
   */
  private step(r: ControlledRecord, running: boolean): void {
    let p: MaybePromise;
    try {
      p = running ? r.run() : r.settle();
    } catch (e) {
      this.onError(e, r);
      return;
    }
    const k = p ? r.continuations : undefined;
    if (k !== undefined) p!.then(running ? k.ran : k.settled, k.failed);
    else if (p) p.then(() => (running ? this.step(r, false) : this.release(r)), (e) => this.onError(e, r));
    else if (running) this.step(r, false);
    else this.release(r);
  }

  /** A reference of `r` ended (its callback, or one of its state requests). */
  release(r: ControlledRecord): void {
    if (--r.refs > 0) return;
    this.inFlight--;
    this.finishedRecords++;
    const lock = r.lock;
    const waiting = lock.waiting;
    const next = waiting === undefined || waiting.length === 0 ? undefined : (waiting.shift() as ControlledRecord);
    if (next !== undefined) {
      this.blockedRecords--;
      if (waiting!.length === 0) this.blockedKeys--;
      this.start(next);
    } else {
      lock.busy = false;
      lock.idle?.();
    }
    this.epochs.leave(r.epoch);
    r.finished?.();
    if (this.keyWaiters.size > 0) this.wakeKeyWaiters(lock);
    this.wakeCapacityWaiters();
    if (this.epochs.pending === 0) this.wakeDrainWaiters();
  }

  private wakeKeyWaiters(lock: KeyLock): void {
    const waiters = this.keyWaiters.get(lock);
    if (waiters === undefined) return;
    this.keyWaiters.delete(lock);
    for (const w of waiters) w();
  }

  private wakeDrainWaiters(): void {
    if (this.inFlight !== 0 || this.drainWaiters.length === 0) return;
    const ws = this.drainWaiters;
    this.drainWaiters = [];
    for (const w of ws) w();
  }

  private wakeCapacityWaiters(): void {
    if (this.capacityWaiters.length === 0 || this.inFlight >= this.admission.current) return;
    const ws = this.capacityWaiters;
    this.capacityWaiters = [];
    for (const w of ws) w();
  }

  private waitForCapacity(): Promise<void> {
    this.inputActive = false;
    if (this.buffer.length) this.flush();
    this.admission.probe();
    return new Promise<void>((resolve) => { this.capacityWaiters.push(resolve); }).then((): MaybePromise =>
      // Woken with others: re-check, someone may have taken the free slot.
      this.inFlight >= this.admission.current ? this.waitForCapacity() : undefined);
  }

  private waitForEpochs(): Promise<void> {
    this.inputActive = false;
    if (this.buffer.length) this.flush();
    return new Promise((resolve) => { this.strictWaiter = resolve; });
  }

  private wakeStrict(): void {
    const w = this.strictWaiter;
    this.strictWaiter = undefined;
    w?.();
    this.wakeDrainWaiters();
  }

  /** Continuations of a finished batch issue their next requests in the same tick: batch those together. */
  private flushSoon(): void {
    if (this.flushScheduled) return;
    this.flushScheduled = true;
    setImmediate(() => {
      this.flushScheduled = false;
      if (this.buffer.length) this.flush();
    });
  }

  private flush(): void {
    if (this.bufferTimer !== undefined) {
      this.clock.clearTimeout(this.bufferTimer);
      this.bufferTimer = undefined;
    }
    const batch = this.buffer;
    if (batch.length === 0) return;
    this.buffer = [];
    this.batches++;
    this.batchedRequests += batch.length;
    const sentAt = this.roundTripNow();
    this.admission.batchSent();
    this.backend.executeBatch(batch).then(() => this.admission.batchAnswered(this.roundTripNow() - sentAt), (e: unknown) => {
      this.admission.batchAnswered(undefined);
      for (const r of batch) r.reject(e);
    });
  }
}
