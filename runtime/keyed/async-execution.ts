// Async mode (asyncState.enabled, the default): records run through the AsyncExecutionController, many
// in flight, state requests batched, per-key order kept; sorted backlog keys through the SortedKeysRunner.

import type { KeyedStateBackend } from "../../state/contracts.ts";
import type { MaybePromise, OperatorContext } from "../contracts/operators.ts";
import { systemClock } from "../core/clock.ts";
import { AsyncExecutionController, type AsyncExecutionOptions, type EarlierTimer } from "./async/controller.ts";
import type { ControlledRecord } from "./async/controlled-record.ts";
import { SortedKeysRunner, type KeyTask } from "./backlog/sorted-keys-runner.ts";
import type { DueTimers, KeyedCallbacks, KeyedExecution } from "./execution.ts";
import { TIMER_INPUT, type KeyedRecordContext } from "./record-context.ts";
import type { Timer } from "./timers/timer-service.ts";

export interface AsyncExecutionSettings extends AsyncExecutionOptions {
  /** A subtask with records in flight and none finishing for this long says so (it does not fail). */
  readonly stallTimeoutMs: number;
}

export class AsyncExecution implements KeyedExecution {
  private readonly aec: AsyncExecutionController;
  private readonly sortedRunner: SortedKeysRunner;
  private readonly stallTimer: ReturnType<typeof setInterval>;
  private stalled = false;

  constructor(
    backend: KeyedStateBackend,
    settings: AsyncExecutionSettings,
    private readonly ctx: OperatorContext,
    private readonly callbacks: KeyedCallbacks,
    onError: (error: unknown, key: unknown) => void,
  ) {
    // The buffer timeout and stall detection are the runtime's own latencies, on real time: a ManualClock
    // (`weir run --manual-clock`) moves processing time only, and would hold a batch of reads until moved.
    const earlierTimer: EarlierTimer | undefined = settings.watermarkMode === "out-of-order" ? (r, upTo) => this.earlierTimer(r, upTo) : undefined;
    this.aec = new AsyncExecutionController(backend, settings, systemClock, (e, record) => onError(e, record.key), undefined, earlierTimer);
    this.sortedRunner = new SortedKeysRunner(backend, settings.bufferSize);
    this.stallTimer = this.watchForStalls(settings.stallTimeoutMs);
  }

  get inFlightRecords(): number { return this.aec.inFlightRecords; }

  record(rc: KeyedRecordContext<unknown, unknown>): MaybePromise {
    rc.controller = this.aec;
    rc.continuations ??= this.aec.continuationsFor(rc);
    return this.aec.submit(rc);
  }

  processingTimer(timer: Timer): MaybePromise {
    return this.aec.submit(this.claimTimer(this.callbacks.timerContext(timer, undefined, undefined, true)));
  }

  /**
   * A due timer whose key has a timer in flight waits for it before it leaves the queue: that onTimer may
   * register a timer due before this one, which must fire first (as Flink's timer queue fires them one
   * after another). Only for timers: a hot key's records, always some in flight, would hold it for ever.
   */
  watermark(watermark: number, due: DueTimers, emit: () => MaybePromise): MaybePromise {
    const next = (): KeyedRecordContext<unknown, unknown> | Promise<void> | undefined => {
      const timer = due.peek();
      if (timer === undefined) return undefined;
      const rc = this.callbacks.timerContext(timer, watermark);
      if (rc.slot.timersInFlight > 0) return this.aec.whenReleased(rc.lock);
      due.poll();
      return this.claimTimer(rc);
    };
    return this.aec.onWatermark(watermark, next, () => { void emit(); });
  }

  /** Out-of-order mode: the key's earliest event-time timer due at `upTo`, to fire before record `r` (controller.ts start). */
  private earlierTimer(r: ControlledRecord, upTo: number): ReturnType<EarlierTimer> {
    const rc = r as KeyedRecordContext<unknown, unknown>;
    if (rc.input === TIMER_INPUT) return undefined;
    const timer = this.callbacks.pollDueTimer(rc.slot.keyId, upTo);
    if (timer === undefined) return undefined;
    return { record: this.claimTimer(this.callbacks.timerContext(timer, undefined, rc.slot)), timestamp: timer.timestamp };
  }

  /** A timer's context handed to the controller: its key has a timer in flight until it finishes (record-context.ts). */
  private claimTimer(rc: KeyedRecordContext<unknown, unknown>): KeyedRecordContext<unknown, unknown> {
    rc.slot.timersInFlight++;
    rc.controller = this.aec;
    return rc;
  }

  /** The keys of a batch concurrently, their reads grouped. */
  sortedKeys(tasks: readonly KeyTask[]): Promise<unknown> {
    return this.sortedRunner.run(tasks);
  }

  drain(): MaybePromise { return this.aec.drain(); }
  setInFlightBudget(records: number): void { this.aec.setInFlightBudget(records); }
  inputIdle(): void { this.aec.inputIdle(); }

  close(): void {
    clearInterval(this.stallTimer);
    this.aec.close();
  }

  metrics(): Record<string, number> {
    return { ...this.aec.metrics(), stalled: this.stalled ? 1 : 0 };
  }

  private watchForStalls(timeoutMs: number): ReturnType<typeof setInterval> {
    let finished = -1;
    let since = systemClock.now();
    const t = setInterval(() => {
      const aec = this.aec;
      const now = systemClock.now();
      if (aec.finishedRecords !== finished || aec.inFlightRecords === 0) {
        finished = aec.finishedRecords;
        since = now;
      }
      const stuck = aec.inFlightRecords > 0 && now - since >= timeoutMs;
      if (stuck && !this.stalled) {
        this.ctx.log(`operator "${this.ctx.runtime.operatorName}" subtask ${this.ctx.runtime.subtaskIndex}: ${aec.inFlightRecords} records in flight, none finished for ${timeoutMs >= 1000 ? `${Math.round(timeoutMs / 1000)} s` : `${timeoutMs} ms`} (a processElement or onTimer that never settles, or a state backend not answering?); weir status shows it as stalled`);
      }
      this.stalled = stuck;
    }, Math.min(timeoutMs / 2, 5000));
    t.unref();
    return t;
  }
}
