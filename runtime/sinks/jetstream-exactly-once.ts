// Exactly-once for Sinks.jetstream: two-phase commit on checkpoints.
//
// Why not just message ids by arrival order? After a keyed exchange the order in which a sink subtask
// receives records from several upstream subtasks differs from run to run, so "the n-th record" is not
// the same record after a replay: ids by arrival would drop new records and let duplicates through.
//
// So: records written between two checkpoints are held (phase 1); at checkpoint n they are appended to
// the staging stream as large chunks (durable, cheap) and referenced from the checkpoint; when checkpoint
// n commits, they are published to the target with ids `<job>:<uid>:<subtask>:c<n>:<i>` (phase 2) and the
// staged chunks are purged. A crash anywhere is covered: before the commit, the restore replays the input
// from checkpoint n−1 and the held records are recomputed; after it, the restore re-publishes checkpoint
// n's staged output with the same ids, and the stream's duplicate window drops what was already there.
// Each sink subtask also records, after publishing a checkpoint's output in full, that checkpoint's id in
// the staging stream, and a restore skips what is recorded there: only output whose publishing a crash
// interrupted relies on the duplicate window. That window alone was not enough on a three-node 2.9.10
// cluster: in one run of tests/cluster-failover.test.ts (each server killed in turn) a restore's
// re-publish of the restored checkpoint's output, seconds after it was first published, was stored again.
// Cost: output becomes visible at checkpoint completion (latency = checkpoint interval), like Flink's
// transactional Kafka sink. `delivery: "at-least-once"` publishes at once instead.

import type { RestoredPart, SinkContext, SinkWriter } from "../contracts/connectors.ts";
import { sinkPayload, type SinkPayload } from "./payload.ts";
import { ErrorCode, WeirError, messageOf } from "../core/errors.ts";
import { ConnectorNames } from "../core/names.ts";
import { InflightWindow } from "./inflight.ts";
import { StagingArea, type StagedRecord, type StagedRef } from "./staging.ts";

export interface ExactlyOnceState {
  /** Staged output of checkpoints not yet known to be committed, oldest first. */
  readonly staged: readonly StagedRef[];
}

export interface Publisher {
  publish(subject: string, payload: SinkPayload, messageId: string): void | Promise<void>;
  /** All of `records` at once (`idOf(i)` the id of the i-th), resolved once every one is stored. */
  publishBatch?(records: readonly StagedRecord[], idOf: (i: number) => string): Promise<void>;
  drain(): Promise<void>;
  /** Releases what the publisher holds (its reply subscription). */
  close?(): void;
}

export class ExactlyOnceJetStreamWriter<T> implements SinkWriter<T> {
  private pending: StagedRecord[] = [];
  /** checkpoint id → its records (in memory), where they are staged, and the refs its state lists. */
  private readonly prepared = new Map<number, { records: StagedRecord[]; ref: Promise<StagedRef | undefined>; listed: Promise<readonly StagedRef[]> }>();
  private readonly uncommitted: StagedRef[] = [];
  /**
   * Staged output already published (by a commit, or again at a restore), kept until a checkpoint whose
   * state does not list it commits: until then a crash restores a checkpoint that lists it and needs it.
   */
  private published: StagedRef[] = [];
  private readonly names: ConnectorNames;
  private readonly staging: StagingArea;
  /** Commits run one after another in the background, so the subtask keeps processing meanwhile. */
  private commits: Promise<void> = Promise.resolve();
  private failure: unknown;
  /** Records published by commits (and again at restores): `weir status`'s `out` counts them once written. */
  committed = 0;

  constructor(
    private readonly ctx: SinkContext,
    /** A record's subject, or undefined when it went to the dead letters (a subject it cannot be published to). */
    private readonly resolve: (value: T) => string | undefined,
    private readonly publisher: Publisher,
    /** The target stream's max_msg_size, if it sets one: a record over it is a dead letter (sinkPayload). */
    private readonly maxBytes?: number,
  ) {
    this.names = new ConnectorNames(ctx.names);
    this.staging = new StagingArea(ctx.nc, this.names.stagingStream, this.names.stagingSubject(ctx.operatorUid, ctx.subtaskIndex), ctx.names.replicas);
  }

  /** Re-commits the staged output of the restored checkpoint that this subtask is responsible for. */
  async recover(parts: readonly RestoredPart[]): Promise<void> {
    const mine = parts.filter((p) => p.index % this.ctx.parallelism === this.ctx.subtaskIndex);
    for (const part of mine) {
      const state = part.state as ExactlyOnceState | undefined;
      if (!state || !Array.isArray(state.staged)) {
        throw new WeirError(ErrorCode.Sink, `Sinks.jetstream: restored state of subtask ${part.index} is not an exactly-once state`);
      }
      for (const ref of state.staged) {
        const area = this.areaOf(ref.subtask);
        try {
          if (!(await area.isCommitted(ref))) {
            await this.publishAll(ref.checkpointId, ref.subtask, await area.read(ref));
            await area.markCommitted(ref.checkpointId);
          }
        } catch (e) {
          throw this.commitError(ref.checkpointId, e, " again at a restore");
        }
        this.published.push(ref);
      }
    }
  }

  write(value: T): void {
    if (this.failure) throw this.failure;
    const payload = sinkPayload(this.ctx, value, this.maxBytes);
    const subject = payload === undefined ? undefined : this.resolve(value);
    if (subject !== undefined) this.pending.push([subject, payload!]);
  }

  /** Phase 1: what was written since the last checkpoint belongs to checkpoint `id`; stage it durably. */
  snapshotState(checkpointId: number): Promise<ExactlyOnceState> {
    // After a staging failure no later checkpoint may complete: it would not hold the lost records.
    if (this.failure) throw this.failure;
    const records = this.pending;
    this.pending = [];
    if (this.prepared.has(checkpointId)) {
      throw new WeirError(ErrorCode.Sink, `Sinks.jetstream: checkpoint ${checkpointId} was snapshotted twice in subtask ${this.ctx.subtaskIndex}`);
    }
    const ref = this.staging.stage(checkpointId, this.ctx.subtaskIndex, records);
    // The records are this checkpoint's alone now: if they cannot be staged, only a restart from the last
    // completed checkpoint (which reads their input again) brings them back, so the job fails over; a
    // checkpoint merely declined lost them (a later one completed without them).
    ref.catch((e: unknown) => {
      if (this.failure !== undefined) return;
      this.failure = new WeirError(ErrorCode.Sink, `sink "${this.ctx.operatorName}" (Sinks.jetstream, subtask ${this.ctx.subtaskIndex}): staging the output of checkpoint ${checkpointId} failed: ${messageOf(e)}`, { cause: e });
      this.ctx.fail?.(this.failure);
    });
    const listed = ref.then((r) => {
      if (r) this.uncommitted.push(r);
      return [...this.uncommitted];
    });
    this.prepared.set(checkpointId, { records, ref, listed });
    return listed.then((staged) => ({ staged }));
  }

  /**
   * Phase 2: checkpoint `id` committed: publish its output (and any earlier one still held). Runs behind
   * earlier commits without holding up the subtask. A failure fails the subtask at once (through the
   * context), not at the next write: on a quiet input there may be none, and the job would look healthy
   * while nothing is published. The restart re-publishes from the restored checkpoint.
   */
  notifyCheckpointComplete(checkpointId: number): Promise<void> {
    // None after a failed one: a later commit would mark that checkpoint's output as published (the
    // staging's commit mark is a high-water mark), and the restore would skip it: output lost.
    this.commits = this.commits.then(() => (this.failure === undefined ? this.commit(checkpointId) : undefined)).catch((e: unknown) => {
      if (this.failure !== undefined) return;
      this.failure = this.commitError(checkpointId, e, "");
      this.ctx.fail?.(this.failure);
    });
    return Promise.resolve();
  }

  metrics(): Record<string, number> { return { committedRecords: this.committed }; }

  /** One line naming the sink, the checkpoint and the cause. */
  private commitError(checkpointId: number, e: unknown, when: string): WeirError {
    const cause = messageOf(e).replace(/^Sinks\.jetstream: /, "");
    return new WeirError(ErrorCode.Sink, `sink "${this.ctx.operatorName}" (Sinks.jetstream, subtask ${this.ctx.subtaskIndex}): committing the output of checkpoint ${checkpointId}${when} failed: ${cause}`, { cause: e });
  }

  private async commit(checkpointId: number): Promise<void> {
    const ids = [...this.prepared.keys()].filter((id) => id <= checkpointId).sort((a, b) => a - b);
    for (const id of ids) {
      const { records, ref, listed } = this.prepared.get(id)!;
      this.prepared.delete(id);
      const staged = await ref;
      const stillListed = new Set(await listed);
      await this.publishAll(id, this.ctx.subtaskIndex, records);
      if (staged) await this.staging.markCommitted(id);
      if (staged) {
        const at = this.uncommitted.indexOf(staged);
        if (at >= 0) this.uncommitted.splice(at, 1);
      }
      // Checkpoint `id` is committed, so restores start from it (or later): staged output its state does
      // not list is never read again. What it lists (its own, earlier ones not yet committed when it was
      // taken) stays until a checkpoint that no longer lists them commits.
      if (staged) this.published.push(staged);
      const done = this.published.filter((r) => !stillListed.has(r));
      this.published = this.published.filter((r) => stillListed.has(r));
      for (const r of done) await this.areaOf(r.subtask).purgeThrough(r.lastSeq);
    }
  }

  private areaOf(subtask: number): StagingArea {
    return subtask === this.ctx.subtaskIndex ? this.staging : new StagingArea(this.ctx.nc, this.names.stagingStream, this.names.stagingSubject(this.ctx.operatorUid, subtask), this.ctx.names.replicas);
  }

  /** Records are committed by checkpoints (the final one covers the end of input), not by flush. */
  async flush(): Promise<void> {
    await this.commits;
    if (this.failure) throw this.failure;
    await this.publisher.drain();
  }

  async close(): Promise<void> {
    try {
      await this.commits;
      await this.publisher.drain().catch(() => {});
    } finally {
      this.publisher.close?.();
    }
    if (this.failure) throw this.failure;
  }

  private async publishAll(checkpointId: number, subtask: number, records: readonly StagedRecord[]): Promise<void> {
    if (this.publisher.publishBatch) {
      await this.publisher.publishBatch(records, (i) => this.names.committedMessageId(this.ctx.operatorUid, subtask, checkpointId, i));
      this.committed += records.length;
      return;
    }
    for (let i = 0; i < records.length; i++) {
      const [subject, payload] = records[i]!;
      const p = this.publisher.publish(subject, payload, this.names.committedMessageId(this.ctx.operatorUid, subtask, checkpointId, i));
      if (p) await p;
    }
    await this.publisher.drain();
    this.committed += records.length;
  }
}

/** A publisher over an InflightWindow (bounded outstanding acks). */
export function windowPublisher(window: InflightWindow, publish: (subject: string, payload: SinkPayload, id: string) => void | Promise<void>, close?: () => void, publishBatch?: Publisher["publishBatch"]): Publisher {
  return {
    publish,
    drain: () => window.drain(),
    ...(close ? { close } : {}),
    ...(publishBatch ? { publishBatch } : {}),
  };
}
