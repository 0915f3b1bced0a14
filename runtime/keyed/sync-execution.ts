// Sync mode (asyncState.enabled false; FLIP-425's sync mode, the baseline and an escape hatch): one
// record at a time, its state requests sent straight to the backend (DirectStateRequestHandler, whose
// tryNow answers in-memory requests without a batch).

import type { KeyedStateBackend } from "../../state/contracts.ts";
import { DirectStateRequestHandler } from "../../state/handlers/direct.ts";
import type { MaybePromise } from "../contracts/operators.ts";
import type { KeyTask } from "./backlog/sorted-keys-runner.ts";
import type { DueTimers, KeyedCallbacks, KeyedExecution } from "./execution.ts";
import type { KeyedRecordContext } from "./record-context.ts";
import { TIMERS_BETWEEN_TURNS, nextTurn } from "./timers/turns.ts";
import type { Timer } from "./timers/timer-service.ts";

export class SyncExecution implements KeyedExecution {
  private readonly direct: DirectStateRequestHandler;

  constructor(backend: KeyedStateBackend, private readonly callbacks: KeyedCallbacks) {
    this.direct = new DirectStateRequestHandler(backend);
  }

  get inFlightRecords(): number { return 0; }

  record(rc: KeyedRecordContext<unknown, unknown>): MaybePromise {
    rc.slot.handler = this.direct;
    return this.callbacks.call(rc);
  }

  processingTimer(timer: Timer): MaybePromise {
    return this.fire(timer, undefined, true);
  }

  watermark(watermark: number, due: DueTimers, emit: () => MaybePromise): MaybePromise {
    let fired = 0;
    const fireDue = (): MaybePromise => {
      for (let timer = due.poll(); timer; timer = due.poll()) {
        const p = this.fire(timer, watermark);
        if (p) return p.then(fireDue);
        if (++fired % TIMERS_BETWEEN_TURNS === 0) return nextTurn().then(fireDue);
      }
      return emit();
    };
    return fireDue();
  }

  private fire(timer: Timer, watermark: number | undefined, processingTime = false): MaybePromise {
    const rc = this.callbacks.timerContext(timer, watermark, undefined, processingTime);
    rc.slot.handler = this.direct;
    return this.callbacks.call(rc);
  }

  /** One key after another. */
  async sortedKeys(tasks: readonly KeyTask[]): Promise<unknown> {
    for (const task of tasks) {
      const p = task(this.direct);
      if (p) await p;
    }
    return undefined;
  }

  drain(): MaybePromise { return undefined; }
  setInFlightBudget(): void {}
  inputIdle(): void {}
  close(): void {}
  metrics(): Record<string, number> { return {}; }
}
