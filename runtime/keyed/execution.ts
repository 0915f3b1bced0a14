// How a keyed operator runs its records: the one interface both execution strategies implement
// (sync-execution.ts: one record at a time, FLIP-425's sync mode; async-execution.ts: many in flight
// through the AsyncExecutionController). The operator picks one at open and sends every record, timer
// and watermark through it; the backlog drain hands it each batch of sorted keys.

import type { StateRequestHandler } from "../../state/contracts.ts";
import type { MaybePromise } from "../contracts/operators.ts";
import type { KeyTask } from "./backlog/sorted-keys-runner.ts";
import type { Timer } from "./timers/timer-service.ts";

/** What a strategy calls back into: the user function for a record, and for a timer. */
export interface KeyedCallbacks {
  /** The user function for one record, with its state requests going to `handler`. */
  call(key: unknown, keyGroup: number, keyId: string, value: unknown, ts: number | undefined, input: number, handler: StateRequestHandler, watermark: number | undefined): MaybePromise;
  /** `onTimer` for one timer. */
  fire(timer: Timer, handler: StateRequestHandler, watermark: number | undefined): MaybePromise;
}

export interface KeyedExecution {
  /** One record of `key` (arrived at the current watermark). */
  record(key: unknown, keyGroup: number, keyId: string, value: unknown, ts: number | undefined, input: number): MaybePromise;
  /** One due processing-time timer. */
  processingTimer(timer: Timer): MaybePromise;
  /** A watermark: the event-time timers `due` hands out fire (after every earlier record), then `emit`. */
  watermark(watermark: number, due: () => Timer | undefined, emit: () => MaybePromise): MaybePromise;
  /** Runs the tasks of one batch of sorted backlog keys (one task per key) to their end. */
  sortedKeys(tasks: readonly KeyTask[]): Promise<unknown>;
  /** Settles when every record accepted so far has finished. */
  drain(): MaybePromise;
  readonly inFlightRecords: number;
  setInFlightBudget(records: number): void;
  inputIdle(): void;
  close(): void;
  metrics(): Record<string, number>;
}
