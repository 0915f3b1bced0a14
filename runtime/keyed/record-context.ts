// The context a keyed function sees for one record (or one timer firing) of one key: its key, state
// handles bound to that key (requests going to the record's handler) and its timers.

import type { HandleOf, StateDescriptor, StateRequestHandler } from "../../state/contracts.ts";
import { createStateHandle } from "../../state/mod.ts";
import type { KeyedContext, TimerService } from "../contracts/functions.ts";
import type { OperatorContext } from "../contracts/operators.ts";
import { RecordContext } from "../operators/basic.ts";
import type { InternalTimerService, Timer } from "./timers/timer-service.ts";

/** Where a record's context gets its key's timers (created only when a record uses timers). */
export interface KeyTimerSource {
  timerServiceFor(rc: KeyedRecordContext<unknown, unknown>): TimerService;
}

/** The timers of one key, as the user sees them. */
export class KeyTimers implements TimerService {
  constructor(private readonly service: InternalTimerService, private readonly rc: KeyedRecordContext<unknown, unknown>, private readonly onProcessingTimer: (ts: number) => void) {}
  private timer(timestamp: number): Timer {
    return { timestamp, keyId: this.rc.keyId, key: this.rc.key, keyGroup: this.rc.keyGroup };
  }
  registerEventTimeTimer(ts: number): void { this.service.eventTime.add(this.timer(ts)); }
  deleteEventTimeTimer(ts: number): void { this.service.eventTime.delete(ts, this.rc.keyId); }
  registerProcessingTimeTimer(ts: number): void { if (this.service.processingTime.add(this.timer(ts))) this.onProcessingTimer(ts); }
  deleteProcessingTimeTimer(ts: number): void { this.service.processingTime.delete(ts, this.rc.keyId); }
}

/** The context of one record (or one timer firing) of one key. */
export class KeyedRecordContext<K, O> extends RecordContext<O> implements KeyedContext<K, O> {
  private firstDescriptor: StateDescriptor | undefined;
  private firstHandle: unknown;
  private handles: Map<StateDescriptor, unknown> | undefined;
  private keyTimers: TimerService | undefined;

  constructor(
    op: OperatorContext,
    private readonly owner: KeyTimerSource,
    readonly key: K,
    readonly keyGroup: number,
    readonly keyId: string,
    private readonly handler: StateRequestHandler,
    private readonly watermark: number | undefined,
  ) {
    super(op);
  }

  get timers(): TimerService {
    return (this.keyTimers ??= this.owner.timerServiceFor(this as KeyedRecordContext<unknown, unknown>));
  }

  state<D extends StateDescriptor>(descriptor: D): HandleOf<D> {
    // Most functions use one state: its handle lives in a field, others in a map (one context per record).
    if (this.firstDescriptor === descriptor) return this.firstHandle as HandleOf<D>;
    if (this.firstDescriptor === undefined) {
      this.firstDescriptor = descriptor;
      return (this.firstHandle = this.createHandle(descriptor)) as HandleOf<D>;
    }
    this.handles ??= new Map();
    let h = this.handles.get(descriptor);
    if (h === undefined) this.handles.set(descriptor, (h = this.createHandle(descriptor)));
    return h as HandleOf<D>;
  }

  private createHandle(descriptor: StateDescriptor): unknown {
    return createStateHandle(descriptor, { operator: this.op.runtime.operatorUid, keyGroup: this.keyGroup, keyId: this.keyId, key: this.key }, this.handler);
  }

  /** In async mode: the watermark when this record arrived, as in synchronous execution. */
  override currentWatermark(): number {
    return this.watermark ?? super.currentWatermark();
  }
}
