// What the AsyncExecutionController runs and reports: records (the keyed operator's contexts, or
// AsyncRecords), their continuations, and the controller's figures.

import type { MaybePromise } from "../../contracts/operators.ts";
import type { Epoch } from "./epoch-manager.ts";
import type { KeyLock } from "./key-lock.ts";

/**
 * A record (or timer) the controller runs: the keyed operator's record context implements it directly,
 * so a record costs one object. `refs`: one reference for the running callback, one per state request
 * it has outstanding; the record finishes when the count reaches zero.
 */
export interface ControlledRecord {
  refs: number;
  epoch: Epoch;
  /** The watermark when the record arrived (what currentWatermark() reports to it); set at submit if undefined. */
  watermark: number | undefined;
  readonly lock: KeyLock;
  readonly key: unknown;
  /** Starts the record's function (its state requests come to `request`/`tryNow` with this record). */
  run(): MaybePromise;
  /** Once the function's promise resolved: what it must still wait for (output downstream), if anything. */
  settle(): MaybePromise;
  /** The record finished (its key passed on): the object may be reused. */
  finished?(): void;
  /** A record object reused for many records keeps the controller's continuations (continuationsFor). */
  readonly continuations?: RecordContinuations | undefined;
}

/** What the controller calls when a record's promises settle. */
export interface RecordContinuations {
  readonly ran: () => void;
  readonly settled: () => void;
  readonly failed: (e: unknown) => void;
}

export interface AsyncMetrics {
  readonly inFlightRecords: number;
  readonly activeBufferSize: number;
  readonly blockingBufferSize: number;
  readonly blockedKeys: number;
  readonly batchesSent: number;
  readonly meanBatchSize: number;
  /** State requests sent in batches, over all batches (with batchesSent: the mean batch size over any period). */
  readonly batchedRequests: number;
  readonly maxInFlightSeen: number;
  /** Records in flight at which the subtask waits now (adaptive, at most inFlightRecordsLimit). */
  readonly admittedInFlight: number;
  readonly pendingWatermarks: number;
}
