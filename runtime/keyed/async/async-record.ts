// The records and timers the AsyncExecutionController (controller.ts) takes besides the keyed operator's
// own record contexts: records submitted by key id and task (AsyncRecord), timer tasks, and the callbacks
// by which the keyed layer hands it due timers.

import type { StateRequest, StateRequestHandler } from "../../../state/contracts.ts";
import type { MaybePromise } from "../../contracts/operators.ts";
import type { ControlledRecord } from "./controlled-record.ts";
import type { Epoch } from "./epoch-manager.ts";
import type { KeyLock } from "./key-lock.ts";

/** What runs once the record's key is free (submitRecord's form). */
export interface RecordTask {
  run(record: AsyncRecord): MaybePromise;
}

export interface TimerTask {
  readonly keyId: string;
  readonly key: unknown;
  readonly task: RecordTask;
}

/** The next due timer to run, a promise to wait for before asking again, or undefined when none is due. */
export type NextTimer = () => TimerTask | ControlledRecord | Promise<void> | undefined;

/**
 * Out-of-order mode: the earliest event-time timer of `r`'s key due at `upTo` (taken out of the timer
 * queue) as a record to run before `r`, with its time; undefined when none is (or `r` is a timer).
 */
export type EarlierTimer = (r: ControlledRecord, upTo: number) => { readonly record: ControlledRecord; readonly timestamp: number } | undefined;

/** Where an AsyncRecord's state requests go: its controller (controller.ts). */
export interface RecordRequests {
  request(record: ControlledRecord, request: StateRequest): Promise<unknown>;
  tryNow(record: ControlledRecord, request: StateRequest): unknown;
}

/** A record submitted by key id and task (submitRecord): a handler for its own state requests. */
export class AsyncRecord implements ControlledRecord, StateRequestHandler {
  refs = 1;
  watermark: number | undefined = undefined;
  epoch!: Epoch;
  constructor(
    readonly controller: RecordRequests,
    readonly keyId: string,
    readonly task: RecordTask,
    readonly key: unknown,
    readonly lock: KeyLock,
  ) {}
  run(): MaybePromise { return this.task.run(this); }
  settle(): MaybePromise { return undefined; }
  submit(request: StateRequest): Promise<unknown> {
    return this.controller.request(this, request);
  }
  tryNow(request: StateRequest): unknown {
    return this.controller.tryNow(this, request);
  }
}

export const isTimerTask = (t: TimerTask | ControlledRecord): t is TimerTask => (t as TimerTask).task !== undefined;
