// The operator contract inside a subtask (types only). One required method, the rest defaulted by the
// chain: an operator without `onWatermark` forwards watermarks, without `onAttributes` forwards
// RecordAttributes, and so on. A method may return a promise: the caller awaits it before it hands the
// operator anything else, which is how async work and backpressure travel up a chain.

import type { NatsConnection } from "@nats-io/transport-node";
import type { KeyedStateBackend } from "../../state/contracts.ts";
import type { KeyGroupRange } from "../../state/key-groups.ts";
import type { RuntimeContext } from "./functions.ts";
import type { DeadLetters, RestoredPart, SourceSplits } from "./connectors.ts";
import type { ResolvedJobOptions } from "./job-options.ts";
import type { JobNames } from "../core/names.ts";
import type { RecordAttributes } from "./records.ts";
import type { Clock } from "../core/clock.ts";

export type MaybePromise = void | Promise<void>;

export interface Output {
  collect(value: unknown, timestamp: number | undefined): MaybePromise;
  /** A record for the side output `tag` (dropped when nobody consumes that tag). */
  side(tag: string, value: unknown, timestamp: number | undefined): MaybePromise;
  emitWatermark(watermark: number): MaybePromise;
  emitIdle(idle: boolean): MaybePromise;
  emitAttributes(attributes: RecordAttributes): MaybePromise;
  /**
   * A source subtask's output, when what it feeds reads the source's splits apart (fromSource's
   * watermarks): the function to hand it each record with its split; undefined when nothing does.
   */
  forSplits?(splits: SourceSplits): SplitCollector | undefined;
}

export type SplitCollector = (value: unknown, timestamp: number | undefined, split: number) => MaybePromise;

export interface StreamOperator {
  /** `input` is 0, or 1 for the second input of a two-input operator. */
  processElement(value: unknown, timestamp: number | undefined, input: number): MaybePromise;
  open?(): MaybePromise;
  /**
   * Chained right after a source that reads several splits: `splits` once before the first record, then
   * each record through the returned function with its split (fromSource's per-split watermarks).
   */
  readSplits?(splits: SourceSplits): SplitCollector;
  onWatermark?(watermark: number): MaybePromise;
  onIdle?(idle: boolean): MaybePromise;
  onAttributes?(attributes: RecordAttributes): MaybePromise;
  /** Before a checkpoint's state is captured: finish records in flight (async state). */
  prepareSnapshot?(): MaybePromise;
  /**
   * Operator state to store in checkpoint `checkpointId`, captured synchronously at the call; a promise
   * resolves once that state is durable (e.g. a sink's staged output).
   */
  snapshotState?(checkpointId: number): unknown;
  notifyCheckpointComplete?(checkpointId: number): MaybePromise;
  /** No more input is queued right now: send buffered work instead of waiting for more (async state). */
  onInputIdle?(): void;
  /**
   * Records this operator should keep in flight at most: about a target time of the subtask's measured
   * work (buffer debloating), so a checkpoint does not wait for a backpressured backlog to drain.
   */
  setInFlightBudget?(records: number): void;
  /** Work still running after processElement returned (async records in flight). */
  pendingWork?(): number;
  /** All inputs ended: finish async work and emit what is left. */
  endInput?(): MaybePromise;
  close?(): MaybePromise;
  /** Numbers for `weir status`. */
  metrics?(): Record<string, number>;
}

/** What an operator gets from its subtask. */
export interface OperatorContext {
  readonly runtime: RuntimeContext;
  readonly output: Output;
  readonly job: ResolvedJobOptions;
  readonly nc: NatsConnection;
  readonly names: JobNames;
  readonly deadLetters: DeadLetters;
  readonly keyGroupRange: KeyGroupRange;
  readonly clock: Clock;
  /** This operator's state in the checkpoint the job restores (every old subtask's part), if any. */
  restoredState(): readonly RestoredPart[] | undefined;
  /** Whether the job takes checkpoints. */
  readonly checkpointing: boolean;
  /** Whether this run restores a checkpoint or savepoint (keyed operators then load their timers). */
  readonly restoring: boolean;
  /** The subtask's keyed state backend (created on first use, shared by its keyed operators). */
  stateBackend(): Promise<KeyedStateBackend>;
  currentWatermark(): number;
  /**
   * Settles when the subtask's outputs can send again (frames waiting for credit), undefined when they
   * can now: for an operator that emits much within one call (a sorted drain), which would otherwise
   * never let the consumers' credits (and frame sizes) in.
   */
  outputCapacity(): MaybePromise;
  /**
   * Runs `action` on the subtask's mailbox (serialized with record processing): timers use it.
   * `housekeeping`: a periodic check that changes no state (what it emits travels as frames); other mail
   * counts as activity, which keeps the job's periodic checkpoints going (actors/subtask/activity.ts).
   */
  enqueue(action: () => MaybePromise, housekeeping?: boolean): void;
  /** Fails the subtask from a callback outside the record path. */
  fail(error: unknown): void;
  log(message: string): void;
}

export interface OperatorSpec {
  /** "map", "filter", "keyed-process", ... (shown in the job graph). */
  readonly type: string;
  create(ctx: OperatorContext): StreamOperator;
  /** Key selectors of a keyed operator, per input. */
  readonly keySelectors?: ReadonlyArray<(value: any) => unknown>;
  /** false: always starts its own subtask chain. */
  readonly chainable?: boolean;
  /**
   * How the operator's settings lay out its keyed state (fixed windows: their assigner), when a restore
   * under other settings would misread it: its operator state then carries `{ windows: stateLayout }`,
   * and a restore under another layout is refused (actors/job/restore-checks.ts).
   */
  readonly stateLayout?: string;
  /**
   * Settings workers of one job must share that the state layout does not name (a count window's size
   * and slide): part of the job identity (runtime/cluster/job-identity.ts), never checked at a restore.
   */
  readonly sharedSettings?: string;
}
