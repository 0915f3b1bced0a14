// Source and sink contracts (types only). A SourceDef/SinkDef is a description built at graph time;
// each subtask asks it for its own reader or writer at run time.

import type { NatsConnection } from "@nats-io/transport-node";
import type { JobNames } from "../core/names.ts";
import type { RecordAttributes } from "./records.ts";

/** Where malformed input goes: `weir.<job>.dlq`, with the reason. Never silently dropped. */
export interface DeadLetters {
  publish(letter: DeadLetter): void;
  readonly count: number;
  /**
   * Settles once every letter published so far is stored in the dead-letter stream (or its failure
   * logged): a checkpoint covering the rejected records waits for it, so a crash cannot lose them.
   */
  stored(): Promise<void>;
}
export interface DeadLetter {
  readonly reason: string;
  /** The source or operator that rejected it. */
  readonly origin: string;
  /** The raw input, as text when it decodes as UTF-8, else base64. */
  readonly data: Uint8Array | string;
  readonly subject?: string;
  /** The JetStream stream it was read from (with `sequence`, where to find the original). */
  readonly stream?: string | undefined;
  readonly sequence?: number | undefined;
  readonly line?: number | undefined;
}

export interface ConnectorContext {
  readonly jobName: string;
  readonly names: JobNames;
  readonly operatorUid: string;
  readonly operatorName: string;
  readonly subtaskIndex: number;
  readonly parallelism: number;
  /** This run of the job (a restart is another): subjects the subtasks of one run share carry it. */
  readonly attempt?: string;
  /** The job's connection (the same server the channels use). */
  readonly nc: NatsConnection;
  readonly deadLetters: DeadLetters;
  readonly log: (message: string) => void;
}

export interface SourceContext extends ConnectorContext {
  /**
   * When the job restores a checkpoint: the reader states of EVERY subtask of this source then (an array,
   * so a source restored at another parallelism can take its share), else undefined.
   */
  readonly restoredState: unknown;
}

/** One old subtask's checkpointed state of a sink or operator. */
export interface RestoredPart {
  readonly index: number;
  readonly parallelism: number;
  readonly state: unknown;
}

export interface SinkContext extends ConnectorContext {
  /** When the job restores a checkpoint: every old subtask's writer state (take your share). */
  readonly restoredState?: readonly RestoredPart[];
  /** Whether the job takes checkpoints (an exactly-once sink commits on checkpoint completion). */
  readonly checkpointing?: boolean;
  /**
   * Fails the subtask now (and so the job, per its restart strategy): for errors found in the background,
   * such as a commit, which otherwise would surface only when the next record arrives, maybe never.
   */
  readonly fail?: (error: unknown) => void;
}

export interface SourceBatch<T> {
  readonly values: T[];
  /** Event timestamps the source knows (e.g. a message's publish time); optional. */
  readonly timestamps?: Array<number | undefined>;
  /** With the reader's `splits`: which split each record came from (an index below `splits.count`). */
  readonly splits?: number[];
}

/**
 * The independent parts one source subtask reads (a JetStream source's subjects; Flink's splits), whose
 * event times may run apart: `fromSource(…, { watermarks })` keeps a watermark per split and emits the
 * lowest, so a split read behind the others does not see its records counted late.
 */
export interface SourceSplits {
  readonly count: number;
  /** A split with nothing more to read (a bounded one's end): it no longer holds the watermark back. */
  ended(split: number): boolean;
  /**
   * Changes when the reader's splits were replaced by others (Sources.hybrid's next part): the subtask
   * then keeps watermarks for the new ones, checked between batches.
   */
  readonly generation?: number;
}

export interface SourceReader<T> {
  /**
   * The next records: an empty batch when nothing arrived within a short wait (the subtask then flushes,
   * handles control and asks again), `null` once a bounded source has ended. `maxRecords`, when given, is
   * how many records the job can take in about a second under its current backpressure (buffer
   * debloating): a reader that can stop short should return no more, so few records wait ahead of a
   * checkpoint barrier. `maxWaitMs`, given only to a reader with `interrupt`, is how long it may wait for
   * records before answering with an empty batch (longer than the usual short wait once the source is idle).
   */
  pollNext(maxRecords?: number, maxWaitMs?: number): Promise<SourceBatch<T> | null>;
  /**
   * Ends a `pollNext` wait now (with what it has, maybe nothing): the subtask has mail (a checkpoint
   * barrier to inject, a timer, a stop). A reader that has it may be asked to wait longer while idle, so an
   * idle job's sources do not wake their process every few milliseconds.
   */
  interrupt?(): void;
  /** The splits this reader reads, when there are several worth a watermark each (batches then say whose records are whose). */
  readonly splits?: SourceSplits;
  /** RecordAttributes to emit before the next batch, when they changed (backlog ↔ live). */
  takeAttributes?(): RecordAttributes | undefined;
  /** Offsets to store in a checkpoint. */
  snapshotState?(checkpointId: number): unknown;
  /** A checkpoint that includes this reader's state is complete: acknowledge upstream if needed. */
  notifyCheckpointComplete?(checkpointId: number): Promise<void>;
  /** Figures for `weir status` and /metrics, read when asked (e.g. `pendingMessages` not yet read). */
  metrics?(): Record<string, number>;
  close(): Promise<void>;
}

export interface SourceDef<T> {
  readonly kind: string;
  /** Bounded sources end; unbounded ones run until the job is stopped. */
  readonly bounded: boolean;
  /** Parallelism when the job does not set one for the source (e.g. 1 for arrays and files). */
  readonly defaultParallelism?: number;
  /**
   * What decides which records the connector reads (or writes, or where): its options as given (subjects,
   * streams, paths, counts, its functions). Workers of one job must agree on them: a worker whose source
   * read another subject would process other records as the same job (runtime/cluster/job-identity.ts
   * compares them; functions by their text). Optional for a connector of one's own.
   */
  readonly settings?: unknown;
  createReader(ctx: SourceContext): Promise<SourceReader<T>>;
  /**
   * As the next part of a hybrid source: the state to start from, given the final state of the part
   * before it (Flink's HybridSource switch context), or undefined to start as configured. A JetStream
   * part after a bounded one on the same stream starts where that one ended.
   */
  continueFrom?(previous: unknown): unknown;
}

export interface SinkWriter<T> {
  /** Buffer or send one record. A returned promise means "wait before the next one" (backpressure). */
  write(value: T, timestamp: number | undefined): void | Promise<void>;
  /** Everything written so far is durable/sent (end of input, checkpoint). */
  flush(): Promise<void>;
  close(): Promise<void>;
  /** Writer state for checkpoint `checkpointId`, captured at the call; a promise resolves when durable. */
  snapshotState?(checkpointId: number): unknown;
  /** Checkpoint `checkpointId` is committed: make its output visible (two-phase commit). */
  notifyCheckpointComplete?(checkpointId: number): Promise<void>;
  /** Figures for `weir status` beside the records written (e.g. an exactly-once sink's `committedRecords`). */
  metrics?(): Record<string, number>;
}

export interface SinkDef<T> {
  readonly kind: string;
  readonly defaultParallelism?: number;
  /** As SourceDef's: what decides where its records go (subjects, streams, buckets, paths, its functions). */
  readonly settings?: unknown;
  createWriter(ctx: SinkContext): Promise<SinkWriter<T>>;
}
