// How a keyed operator runs its records: the one interface both execution strategies implement
// (sync-execution.ts: one record at a time, FLIP-425's sync mode; async-execution.ts: many in flight
// through the AsyncExecutionController). The operator picks one at open and sends every record, timer
// and watermark through it; the backlog drain hands it each batch of sorted keys.

import type { MaybePromise } from "../contracts/operators.ts";
import type { KeyTask } from "./backlog/sorted-keys-runner.ts";
import type { KeySlot } from "./key-slots.ts";
import type { KeyedRecordContext, KeyedRecordOwner } from "./record-context.ts";
import type { Timer } from "./timers/timer-service.ts";

type Context = KeyedRecordContext<unknown, unknown>;

/** What a strategy calls back into: the keyed operator. */
export interface KeyedCallbacks extends KeyedRecordOwner {
  /** Runs `rc` to its end, one at a time: the user function (errors naming operator and key), then its output. */
  call(rc: Context): MaybePromise;
  /**
   * The user function for `rc` (errors it throws name operator and key), returning its promise, if any, for
   * a loop that awaits it and then `rc.settle()` itself: no promise derived per record, as `call` makes
   * (rejections to be named with userError).
   */
  invokeNamed(rc: Context): Promise<void> | undefined;
  /**
   * The context that fires `timer` (seeing `watermark`; undefined: the arrival watermark in async mode), of
   * `slot` when the caller holds the key's. A processing-time timer's has no timestamp: its outputs carry no
   * event time (as Flink erases it), and a function tells the two kinds apart by it.
   */
  timerContext(timer: Timer, watermark: number | undefined, slot?: KeySlot, processingTime?: boolean): Context;
  /** Takes the key's earliest event-time timer due at `upTo` out of the queue (undefined: none is). */
  pollDueTimer(keyId: string, upTo: number): Timer | undefined;
  /** The busy key whose running record started first (async mode's stall watch: KeySlotTable.oldestBusy). */
  oldestBusySlot(): KeySlot | undefined;
}

/** The event-time timers a watermark makes due, earliest first. */
export interface DueTimers {
  /** The next due timer, left in the queue. */
  peek(): Timer | undefined;
  /** Removes and returns the next due timer. */
  poll(): Timer | undefined;
}

export interface KeyedExecution {
  /** One record (its context, built by the operator). */
  record(rc: Context): MaybePromise;
  /** One due processing-time timer. */
  processingTimer(timer: Timer): MaybePromise;
  /** A watermark: the event-time timers `due` hands out fire (after every earlier record), then `emit`. */
  watermark(watermark: number, due: DueTimers, emit: () => MaybePromise): MaybePromise;
  /** Runs the tasks of one batch of sorted backlog keys (a key each, or a lane taking keys in turn) to their end. */
  sortedKeys(tasks: readonly KeyTask[]): Promise<unknown>;
  /** Settles when every record accepted so far has finished. */
  drain(): MaybePromise;
  readonly inFlightRecords: number;
  setInFlightBudget(records: number): void;
  inputIdle(): void;
  close(): void;
  metrics(): Record<string, number>;
}
