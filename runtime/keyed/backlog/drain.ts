// Backlog (FLIP-327): while the input is in backlog, records are buffered and sorted by key instead of
// processed one by one; when it turns live, each key's records run in arrival order, every timer of that
// key due at a record's arrival watermark firing just before it, as streaming would have done.

import type { KeyedStateBackend, StateRequestHandler, ValueStateDescriptor } from "../../../state/contracts.ts";
import { baseAddress } from "../../../state/handles/address.ts";
import type { KeyedContext } from "../../contracts/functions.ts";
import type { MaybePromise, OperatorContext } from "../../contracts/operators.ts";
import { afterUserCallback, userError, type RecordContext } from "../../operators/basic.ts";
import { copyPlain } from "../../core/json-data.ts";
import type { KeyedCallbacks, KeyedExecution } from "../execution.ts";
import type { KeySlot } from "../key-slots.ts";
import type { KeyedRecordContext } from "../record-context.ts";
import type { InternalTimerService } from "../timers/timer-service.ts";
import { KeyStateOverlay } from "./key-overlay.ts";
import { SortBuffer } from "./sort-buffer.ts";
import type { ArrivalFold, SortedKey } from "./sorted-key.ts";
import type { KeyTask } from "./sorted-keys-runner.ts";
import { batchKeyTask } from "./batch-key.ts";

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
  /** Refuses a folded value that is no JSON data (an async reduce's Promise), as the sorted-key function does. */
  check?(acc: I): void;
}

/** What the drain needs of its keyed operator. */
export interface BacklogHost extends KeyedCallbacks {
  readonly ctx: OperatorContext;
  readonly timers: InternalTimerService;
  /** How log lines name the subtask. */
  readonly where: string;
  /** The operator closed (cancelled, failed): a batch key's timers stop firing (batch-key.ts). */
  readonly closed: boolean;
  readonly sortedKey?: SortedKeyFunction<unknown, unknown, unknown> | undefined;
  readonly sortedKeyFold?: SortedKeyFold<unknown> | undefined;
  /** The record's key (its input's key selector). */
  keyOf(value: unknown, input: number): unknown;
  keyGroupOf(key: unknown): number;
  /** The key's slot for a drain that runs it once (KeySlotTable.slotOnce). */
  slotOnce(key: unknown, keyId: string, keyGroup: number): KeySlot;
  /** A context of `slot` (a record's `value`, or none) whose state requests go to `handler`. */
  context(slot: KeySlot, handler: StateRequestHandler, value: unknown, ts: number | undefined, input: number, watermark: number | undefined): KeyedRecordContext<unknown, unknown>;
  /** The watermark held back during the backlog, forwarded (with its timers) after the drain. */
  onWatermark(watermark: number): MaybePromise;
}

/** Keys whose records run one by one, taken in turn by a batch's lanes. */
interface LaneQueue { readonly keys: readonly SortedKey[]; next: number }

/** Keys of a batch running at once (their reads batched together): a quarter of a drained batch. */
const LANES = 256;

export class BacklogSort {
  private buffer: SortBuffer | undefined;
  /** The buffer being drained: a close in the middle of the drain removes its runs (the drain stops there). */
  private draining: SortBuffer | undefined;
  /** The last watermark received while buffering: held back until the sorted records are processed. */
  private heldWatermark: number | undefined;
  private sortedRecords = 0;
  private spills = 0;
  /** Batch mode: the buffer holds the whole input, and each key runs as batch-key.ts says. */
  batch = false;
  /** Batch mode: timers registered at the end of a key's input that did not fire (batch-key.ts). */
  droppedTimers = 0;

  constructor(private readonly host: BacklogHost, private readonly backend: KeyedStateBackend, private readonly execution: KeyedExecution) {}

  get active(): boolean { return this.buffer !== undefined; }

  begin(batch = false): void {
    this.batch = batch;
    const ctx = this.host.ctx;
    this.buffer = new SortBuffer({ ...ctx.job.backlogSort, operator: ctx.runtime.operatorName, batch }, ctx.currentWatermark(), this.arrivalFold());
  }

  /**
   * A subtask closed while buffering (cancelled, failed, restarted) removes the runs it spilled (a
   * promise while a run being written is still to be removed).
   */
  close(): MaybePromise {
    const removed = (this.buffer ?? this.draining)?.cleanup();
    this.buffer = undefined;
    this.draining = undefined;
    return removed;
  }

  /** Buffers a record (only while active). */
  add(key: unknown, value: unknown, ts: number | undefined, input: number): MaybePromise {
    return this.buffer!.add(key, this.host.keyGroupOf, this.heldWatermark ?? this.host.ctx.currentWatermark(), ts, input, value);
  }

  /** Held while active (downstream must not see it before the sorted records it follows): true. */
  hold(watermark: number): boolean {
    if (this.buffer === undefined) return false;
    this.heldWatermark = watermark;
    return true;
  }

  metrics(): Record<string, number> {
    return { sortedRecords: this.sortedRecords, sortSpills: this.spills + (this.buffer?.spills ?? 0), backlogBuffered: this.buffer?.size ?? 0 };
  }

  /** Runs every buffered key's records, then forwards the held watermark. */
  async drain(): Promise<void> {
    const buffer = this.buffer!;
    this.buffer = undefined;
    this.draining = buffer;
    this.spills += buffer.spills;
    try {
      await this.drainBuffer(buffer);
    } finally {
      if (this.draining === buffer) this.draining = undefined;
    }
  }

  private async drainBuffer(buffer: SortBuffer): Promise<void> {
    // Records that came before the backlog began may still be in flight: they go first.
    await this.execution.drain();
    for await (const keys of buffer.drain()) {
      await this.execution.sortedKeys(this.tasksOf(keys));
      // A drain answered from memory never yields on its own: between batches it lets the event loop in
      // (the consumers' credits and frame sizes, the other subtasks of this process), and waits while its
      // outputs have no credit, instead of piling up frames of the first, tiny size.
      const blocked = this.host.ctx.outputCapacity();
      await (blocked ?? new Promise<void>((resolve) => setImmediate(resolve)));
    }
    const w = this.heldWatermark;
    this.heldWatermark = undefined;
    if (w !== undefined) {
      const p = this.host.onWatermark(w);
      if (p) await p;
    }
  }

  /**
   * Folding on arrival for a sorted-key fold (reduce), for keys whose state the backend knows is empty
   * while no record runs in the controller (one still running could write the key's state). During the
   * backlog nothing else writes it: its records are all in the buffer and reduce has no timers.
   */
  private arrivalFold(): ArrivalFold | undefined {
    const { sortedKeyFold: f, ctx } = this.host;
    if (f === undefined) return undefined;
    const operator = ctx.runtime.operatorUid;
    return {
      canFold: (key, keyGroup, keyId) => this.execution.inFlightRecords === 0 && this.backend.knownEmpty(baseAddress(f.state.name, { operator, keyGroup, keyId, key })),
      fold: (acc, value, key) => {
        try { return f.fold(acc, value); } catch (e) { throw userError(ctx, e, key); }
      },
    };
  }

  /**
   * The tasks of a drained batch of keys, which the execution strategy runs: concurrently with their reads
   * batched (async), or one after another (sync). A function with a sorted-key form (reduce) takes a key's
   * records all at once, a task per key; records that run one by one go to lanes (runLane).
   */
  private tasksOf(keys: readonly SortedKey[]): KeyTask[] {
    const tasks: KeyTask[] = [];
    let oneByOne: SortedKey[] | undefined;
    for (const records of keys) {
      this.sortedRecords += records.count;
      const task = this.keyTask(records);
      if (task !== undefined) tasks.push(task);
      else (oneByOne ??= []).push(records);
    }
    if (oneByOne !== undefined) {
      const queue: LaneQueue = { keys: oneByOne, next: 0 };
      for (let i = Math.min(LANES, oneByOne.length); i > 0; i--) tasks.push((handler) => this.runLane(queue, handler));
    }
    return tasks;
  }

  /** A key's task when its records do not run one by one (else undefined: a lane runs them). */
  private keyTask(records: SortedKey): KeyTask | undefined {
    const host = this.host;
    const sortedKey = host.sortedKey;
    const foldedKey = records.folding && host.sortedKeyFold;
    if (!foldedKey && !sortedKey && !this.batch) return undefined;
    const { keyId, values } = records;
    const n = values.length;
    const key = host.keyOf(values[0], records.input(0));
    const slot = host.slotOnce(key, keyId, records.keyGroup);
    if (foldedKey) return this.foldedKeyTask(records, slot, foldedKey);
    if (sortedKey) {
      return (backend: StateRequestHandler): MaybePromise => {
        // Batch mode keeps a key's state only while the key runs (its overlay is never written back).
        const handler = this.batch ? new KeyStateOverlay(backend, host.ctx.job.state) : backend;
        const rc = host.context(slot, handler, undefined, records.timestamp(n - 1), 0, records.watermark(n - 1));
        let r: void | Promise<void>;
        try { r = sortedKey(values, rc); } catch (e) { throw userError(host.ctx, e, key); }
        return afterUserCallback(host.ctx, rc as RecordContext<unknown>, r, key);
      };
    }
    return batchKeyTask(host, records, slot, (timers) => { this.droppedTimers += timers; });
  }

  /**
   * Keys of a batch one after another, each key's records back to back over an in-memory overlay of its
   * state, each of its timers firing just before the first record whose arrival watermark passed it. A
   * lane, not a task per key: a key of a large backlog has one or two records, and an async frame, a
   * promise for Promise.all and a context per key were a fifth of the drain's allocation
   * (bench/prof-backlog.ts heap); LANES keys at a time still batch their reads.
   */
  private async runLane(queue: LaneQueue, handler: StateRequestHandler): Promise<void> {
    const host = this.host;
    // One context for the lane's records, one after another (each is done with it when the next starts).
    let rc: KeyedRecordContext<unknown, unknown> | undefined;
    while (queue.next < queue.keys.length) {
      const records = queue.keys[queue.next++]!;
      const { keyId, values } = records;
      const n = values.length;
      const key = host.keyOf(values[0], records.input(0));
      const slot = host.slotOnce(key, keyId, records.keyGroup);
      const overlay = new KeyStateOverlay(handler);
      for (let i = 0; i < n; i++) {
        const watermark = records.watermark(i);
        // Timers fire when the watermark moves, as in streaming: one registered at or below the watermark
        // of the previous record waits for the next advance, after the records that came under the same one.
        const advanced = i === 0 || watermark > records.watermark(i - 1);
        for (let timer = advanced ? host.timers.eventTime.pollFirstForKey(keyId, watermark) : undefined; timer; timer = host.timers.eventTime.pollFirstForKey(keyId, watermark)) {
          slot.handler = overlay;
          const p = host.call(host.timerContext(timer, watermark, slot));
          if (p) await p;
        }
        if (rc === undefined) rc = host.context(slot, overlay, values[i], records.timestamp(i), records.input(i), watermark);
        else {
          slot.handler = overlay;
          rc.reset(slot, values[i], records.timestamp(i), records.input(i), watermark);
        }
        // host.call(rc) spelled out: awaiting the function's own promise spares a derived promise, its two
        // callbacks and a microtask per record (bench/prof-backlog.ts, heap profile).
        const running = host.invokeNamed(rc);
        if (running) try { await running; } catch (e) { throw userError(host.ctx, e, key); }
        const settled = rc.settle();
        if (settled) await settled;
      }
      const written = overlay.flush();
      if (written) await written;
    }
  }

  /**
   * A key folded on arrival (ArrivalFold) started from state known to be empty, which nothing wrote
   * since: its folded value is the key's new state and its one result, with no read (what the sorted-key
   * function would compute from an empty state).
   */
  private foldedKeyTask(records: SortedKey, slot: KeySlot, fold: SortedKeyFold<unknown>): KeyTask {
    const host = this.host;
    const { values } = records;
    const n = values.length;
    const key = slot.key;
    return (handler: StateRequestHandler): MaybePromise => {
      const rc = host.context(slot, handler, undefined, records.timestamp(n - 1), 0, records.watermark(n - 1));
      let acc = values[0];
      try {
        for (let i = 1; i < n; i++) acc = fold.fold(acc, values[i]);
        fold.check?.(acc);
      } catch (e) { throw userError(host.ctx, e, key); }
      if (this.batch) {
        rc.collect(acc);
        return rc.settle();
      }
      return rc.state(fold.state).update(acc).then(
        // A copy: the key's next record (streaming again) may modify the kept value in place.
        () => { rc.collect(copyPlain(acc)); return rc.settle(); },
        (e: unknown) => { throw userError(host.ctx, e, key); },
      );
    };
  }
}
