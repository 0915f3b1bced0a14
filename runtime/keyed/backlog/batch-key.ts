// One key's input in batch mode, as Flink's BATCH mode runs it (its BatchExecutionInternalTimeService
// and BatchExecutionKeyedStateBackend): the key's records in timestamp order (arrival order among equal
// or missing timestamps), each seeing the watermark at MIN_WATERMARK (-∞) (no record is late); then, at
// the end of the key's input, the watermark jumps to MAX_WATERMARK (+∞): its event-time timers fire in
// order (and those they register), then its processing-time timers up to the latest one pending then
// (and those callbacks register up to it). Processing time does not pass there: a timer registering the
// next one, a periodic "every minute", would fire for ever. So later ones, and event-time timers those
// callbacks register, are dropped and counted (Flink's batch mode drops every timer registered at the
// end of a key). The key's state lives in an overlay only while the key runs and is dropped afterwards:
// nothing reads it after the job, which takes no checkpoints.

import type { StateRequestHandler } from "../../../state/contracts.ts";
import type { OperatorContext } from "../../contracts/operators.ts";
import { userError } from "../../operators/basic.ts";
import { MAX_WATERMARK, MIN_WATERMARK } from "../../transport/frames.ts";
import type { KeyedCallbacks } from "../execution.ts";
import type { KeySlot } from "../key-slots.ts";
import type { KeyedRecordContext } from "../record-context.ts";
import { FinalTimerWatch } from "../timers/final-timer-watch.ts";
import { TIMERS_BETWEEN_TURNS, nextTurn } from "../timers/turns.ts";
import type { InternalTimerService } from "../timers/timer-service.ts";
import { KeyStateOverlay } from "./key-overlay.ts";
import type { SortedKey } from "./sorted-key.ts";
import type { KeyTask } from "./sorted-keys-runner.ts";

/** The order of a key's records: by timestamp, stable; arrival order when they already are (the common case). */
function timestampOrder(records: SortedKey): number[] {
  const n = records.size;
  const order = Array.from({ length: n }, (_, i) => i);
  let sorted = true;
  let last = Number.NEGATIVE_INFINITY;
  for (let i = 0; i < n && sorted; i++) {
    const ts = records.timestamp(i);
    if (ts === undefined) continue;
    if (ts < last) sorted = false;
    last = ts;
  }
  if (sorted) return order;
  const ts = (i: number) => records.timestamp(i) ?? Number.NEGATIVE_INFINITY;
  return order.sort((a, b) => ts(a) - ts(b) || a - b);
}

/** What a batch key needs of its keyed operator: the user function for records and timers, and the timers. */
export interface BatchKeyHost extends KeyedCallbacks {
  readonly ctx: OperatorContext;
  readonly timers: InternalTimerService;
  /** How log lines name the subtask. */
  readonly where: string;
  /** The operator closed (cancelled, failed): the key's timers stop firing. */
  readonly closed: boolean;
  context(slot: KeySlot, handler: StateRequestHandler, value: unknown, ts: number | undefined, input: number, watermark: number | undefined): KeyedRecordContext<unknown, unknown>;
}

/** `dropped`: told how many timers of the key did not fire (see above). */
export function batchKeyTask(host: BatchKeyHost, records: SortedKey, slot: KeySlot, dropped: (timers: number) => void): KeyTask {
  const { keyId, values } = records;
  return async (backend: StateRequestHandler): Promise<void> => {
    const state = new KeyStateOverlay(backend, host.ctx.job.state);
    // One context for the key's records, one after another (each is done with it when the next starts).
    let rc: KeyedRecordContext<unknown, unknown> | undefined;
    for (const i of timestampOrder(records)) {
      if (rc === undefined) rc = host.context(slot, state, values[i], records.timestamp(i), records.input(i), MIN_WATERMARK);
      else rc.reset(slot, values[i], records.timestamp(i), records.input(i), MIN_WATERMARK);
      // As the sorted drain does (drain.ts): the function's own promise, no derived one per record.
      const running = host.invokeNamed(rc);
      if (running) try { await running; } catch (e) { throw userError(host.ctx, e, rc.key); }
      const settled = rc.settle();
      if (settled) await settled;
    }
    const { eventTime, processingTime } = host.timers;
    // Event-time timers that keep registering more never end (final-timer-watch.ts): said, once past a million.
    const watch = new FinalTimerWatch(0, (line) => host.ctx.log(line), host.where);
    for (const queue of [eventTime, processingTime]) {
      const upTo = queue === eventTime ? Number.POSITIVE_INFINITY : (queue.lastForKey(keyId)?.timestamp ?? Number.NEGATIVE_INFINITY);
      // One at a time, earliest first: a timer may register another one of this key, which may be due before the next.
      for (let timer = queue.pollFirstForKey(keyId, upTo), fired = 0; timer; timer = queue.pollFirstForKey(keyId, upTo)) {
        if (queue === eventTime) watch.firing(timer.key);
        if (++fired % TIMERS_BETWEEN_TURNS === 0) {
          await nextTurn();
          if (host.closed) return;
        }
        slot.handler = state;
        const p = host.call(host.timerContext(timer, MAX_WATERMARK, slot, queue === processingTime));
        if (p) await p;
      }
    }
    let left = 0;
    for (const queue of [eventTime, processingTime]) while (queue.pollFirstForKey(keyId, Number.POSITIVE_INFINITY)) left++;
    if (left > 0) dropped(left);
  };
}
