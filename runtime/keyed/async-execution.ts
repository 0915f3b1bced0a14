// Async mode (asyncState.enabled, the default): records run through the AsyncExecutionController, many
// in flight, state requests batched, per-key order kept; sorted backlog keys through the SortedKeysRunner.

import type { KeyedStateBackend } from "../../state/contracts.ts";
import type { MaybePromise, OperatorContext } from "../contracts/operators.ts";
import { AsyncExecutionController, type AsyncExecutionOptions, type AsyncRecord, type RecordTask, type TimerTask } from "./async/controller.ts";
import { SortedKeysRunner, type KeyTask } from "./backlog/sorted-keys-runner.ts";
import type { KeyedCallbacks, KeyedExecution } from "./execution.ts";
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
    this.aec = new AsyncExecutionController(backend, settings, ctx.clock, (e, record) => onError(e, record.key));
    this.sortedRunner = new SortedKeysRunner(backend, settings.bufferSize);
    this.stallTimer = this.watchForStalls(settings.stallTimeoutMs);
  }

  get inFlightRecords(): number { return this.aec.inFlightRecords; }

  record(key: unknown, keyGroup: number, keyId: string, value: unknown, ts: number | undefined, input: number): MaybePromise {
    return this.aec.submitRecord(keyId, key, new PendingRecord(this.callbacks, key, keyGroup, keyId, value, ts, input));
  }

  processingTimer(timer: Timer): MaybePromise {
    return this.aec.submitRecord(timer.keyId, timer.key, { run: (r) => this.callbacks.fire(timer, r, r.watermark) });
  }

  watermark(watermark: number, due: () => Timer | undefined, emit: () => MaybePromise): MaybePromise {
    const next = (): TimerTask | undefined => {
      const timer = due();
      return timer && { keyId: timer.keyId, key: timer.key, task: { run: (r: AsyncRecord) => this.callbacks.fire(timer, r, watermark) } };
    };
    return this.aec.onWatermark(watermark, next, () => { void emit(); });
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
    let since = this.ctx.clock.now();
    const t = setInterval(() => {
      const aec = this.aec;
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
    return t;
  }
}

/** A record waiting for (or running in) the async execution controller: a task object, not a closure. */
class PendingRecord implements RecordTask {
  constructor(
    private readonly callbacks: KeyedCallbacks,
    private readonly key: unknown,
    private readonly keyGroup: number,
    private readonly keyId: string,
    private readonly value: unknown,
    private readonly ts: number | undefined,
    private readonly input: number,
  ) {}
  run(r: AsyncRecord): MaybePromise {
    return this.callbacks.call(this.key, this.keyGroup, this.keyId, this.value, this.ts, this.input, r, r.watermark);
  }
}
