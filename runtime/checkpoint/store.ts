// Completed checkpoints live in the KV bucket `weir_<job>_ckpt` (history 1): `checkpoint.<id>` holds the
// metadata (split into parts when larger than a message), and `latest` points at the newest completed
// one. Writing the metadata first and then moving `latest` with a compare-and-set is the commit: a crash
// before the CAS leaves the previous checkpoint as the latest, and a second coordinator (a zombie of an
// earlier run) loses the CAS instead of overwriting.
//
// The compare-and-set is not KV's `update(key, value, revision)`: on nats-server 2.9.10 its expected
// subject sequence is checked only by the stream leader before proposing, so two updates can both win on
// a replicated bucket (nats-io/nats-server#4320, #3375). Instead `latest` (and `ids`) are appended to the
// bucket's stream with Nats-Expected-Last-Sequence, which every replica checks again as it applies the
// message, after reading from the stream leader that the key is still at the expected revision and the
// stream at that sequence. The stored values are the same KV entries as before: old stores read as is.
//
// Bookkeeping is O(1) per checkpoint: `latest` also names the retained checkpoints, so retention deletes
// known ids and never lists keys (a KV key listing leaves a consumer on the stream for minutes and walks
// every marker). A checkpoint is deleted with a subject-filtered stream purge, which, unlike KV
// delete/purge, leaves no marker message behind: the bucket's stream holds only what is retained.
// One listing per run (`sweep`) removes what a crash between the commit and the deletes left over.

import type { NatsConnection } from "@nats-io/transport-node";
import { jetstream, jetstreamManager, JetStreamApiCodes, JetStreamApiError, type JetStreamClient, type JetStreamManager } from "@nats-io/jetstream";
import { reconcileStream } from "../../state/backends/stream-replicas.ts";
import { isTransientJetStreamError, retryJetStream, waitForStreamLeader } from "../../state/backends/jetstream-retry.ts";
import { purgeSubject } from "../../state/backends/jetstream-purge.ts";
import { Kvm, type KV } from "@nats-io/kv";
import { lookUpStream } from "../nats/streams.ts";
import { ErrorCode, WeirError } from "../core/errors.ts";
import type { JobNames } from "../core/names.ts";
import type { CheckpointKind, CheckpointMetadata } from "./metadata.ts";
import { payloadBudget } from "../../state/backends/payload-budget.ts";

export interface LatestPointer {
  readonly id: number;
  readonly kind: CheckpointKind;
  readonly completedAt: number;
  /** Completed checkpoints (not savepoints) kept, oldest first, this one included when it is one. */
  readonly retained?: readonly number[];
}

/**
 * A commit refused because `latest` is not where this run left it: no later commit of this run can
 * succeed (another run moved it, or the bucket's stream lost what this run wrote).
 */
export class LatestMovedError extends WeirError {
  constructor(readonly checkpointId: number, readonly expectedRevision: number) {
    super(ErrorCode.Checkpoint, `checkpoint ${checkpointId} could not be committed: another run moved the latest checkpoint (expected revision ${expectedRevision})`);
    this.name = "LatestMovedError";
  }
}

const PART_BYTES = 512 * 1024;
const pad = (id: number) => String(id).padStart(12, "0");

export class CheckpointStore {
  /** The pointer as last read or written, to carry the retained ids to the next commit without a read. */
  private known: { pointer: LatestPointer; revision: number } | undefined;
  /** Checkpoints that fell out of the retention at the last commits, to delete. */
  private expired: number[] = [];

  private constructor(
    private readonly nc: NatsConnection, private readonly kv: KV, readonly bucket: string,
    private readonly jsm: JetStreamManager, private readonly js: JetStreamClient,
    /** The bucket's replicas: deletes by sequence on a replicated one (jetstream-purge.ts). */
    private readonly replicas: number,
  ) {}

  static async open(nc: NatsConnection, names: JobNames): Promise<CheckpointStore> {
    const kvm = new Kvm(nc);
    // Replicated: no direct gets, so a restore never reads a follower that has not seen the last commit.
    const allowDirect = names.replicas === 1;
    let kv = await retryJetStream(() => kvm.create(names.checkpointBucket, { history: 1, replicas: names.replicas, allow_direct: allowDirect }));
    const jsm = await jetstreamManager(nc);
    if (await reconcileStream(jsm, (await retryJetStream(() => kv.status())).streamInfo, { replicas: names.replicas, ...(allowDirect ? {} : { allowDirect }) })) {
      kv = await kvm.open(names.checkpointBucket);
    }
    if (names.replicas > 1) await waitForStreamLeader(() => jsm.streams.info(`KV_${names.checkpointBucket}`));
    return new CheckpointStore(nc, kv, names.checkpointBucket, jsm, jetstream(nc), names.replicas);
  }

  /**
   * The job's bucket as it is, for readers (`weir checkpoints`, the dashboard): undefined when the job has
   * none. Never creates it, nor changes its replicas (open() brings them to the job's natsReplicas).
   */
  static async openExisting(nc: NatsConnection, names: JobNames): Promise<CheckpointStore | undefined> {
    const jsm = await jetstreamManager(nc);
    const info = await lookUpStream(jsm, `KV_${names.checkpointBucket}`);
    if (!info) return undefined;
    const kv = await new Kvm(nc).open(names.checkpointBucket);
    return new CheckpointStore(nc, kv, names.checkpointBucket, jsm, jetstream(nc), info.config.num_replicas || 1);
  }

  /** The KV bucket's stream. */
  get stream(): string { return `KV_${this.bucket}`; }

  async latest(): Promise<{ pointer: LatestPointer; revision: number } | undefined> {
    const e = await retryJetStream(() => this.leaderGet("latest"));
    if (!e) return undefined;
    this.known = { pointer: JSON.parse(e.value) as LatestPointer, revision: e.revision };
    return this.known;
  }

  /**
   * No checkpoint is the latest any more (a run starting with `--restore none` erased the keyed state the
   * stored ones refer to): the next run starts from nothing until this one commits. Checkpoints are kept
   * (ids are never reused; the next run's sweep deletes the old ones, savepoints stay).
   */
  async forgetLatest(): Promise<void> {
    await purgeSubject(this.jsm, this.stream, `$KV.${this.bucket}.latest`, undefined, this.replicas);
    this.known = undefined;
  }

  /** `key`'s value and revision read from the stream leader (never a follower), or undefined when absent. */
  private async leaderGet(key: string): Promise<{ value: string; revision: number } | undefined> {
    const m = await this.jsm.streams.getMessage(this.stream, { last_by_subj: `$KV.${this.bucket}.${key}` });
    if (!m || m.data.length === 0 || m.header?.get("KV-Operation")) return undefined;
    return { value: m.string(), revision: m.seq };
  }

  /**
   * The one-round-trip commit: appends `key` right after our own write at `lastSeq`, which every replica
   * checks, while the leader also checks the key is at `revision` (it has applied everything up to our
   * acknowledged write, and nothing may come between). Undefined when anything else was appended since:
   * then `compareAndAppend` reads and decides.
   */
  private async appendAfter(key: string, value: string, lastSeq: number | undefined, revision: number): Promise<number | undefined> {
    if (lastSeq === undefined) return undefined;
    try {
      return (await this.js.publish(`$KV.${this.bucket}.${key}`, value, { expect: { lastSequence: lastSeq, lastSubjectSequence: revision } })).seq;
    } catch (e) {
      // Moved on, or an election (the append may or may not have landed): `compareAndAppend` finds out.
      if (e instanceof JetStreamApiError && (e.code === JetStreamApiCodes.StreamWrongLastSequence || /wrong last sequence/i.test(e.message))) return undefined;
      if (isTransientJetStreamError(e)) return undefined;
      throw e;
    }
  }

  /**
   * Writes `key` only while `decide`, given its current value read from the stream leader, says which value
   * to write, and nothing was appended to the stream since that read: returns the new revision, or
   * "moved" when `decide` refused. Another write to the bucket in between (this run storing a checkpoint)
   * only makes it read and try again.
   */
  private async compareAndAppend(key: string, decide: (current: { value: string; revision: number } | undefined) => string | "moved", tried?: string): Promise<number | "moved"> {
    // What an append that failed (perhaps in a leader election) tried to write: found stored, it did land.
    let unsure = tried;
    const deadline = Date.now() + 30_000;
    for (let attempt = 0; ; attempt++) {
      const last = (await retryJetStream(() => this.jsm.streams.info(this.stream))).state.last_seq;
      const current = await retryJetStream(() => this.leaderGet(key));
      if (unsure !== undefined && current?.value === unsure) return current.revision;
      const value = decide(current);
      if (value === "moved") return "moved";
      try {
        return (await this.js.publish(`$KV.${this.bucket}.${key}`, value, { expect: { lastSequence: last } })).seq;
      } catch (e) {
        const transient = isTransientJetStreamError(e) && Date.now() < deadline;
        if (transient) unsure = value;
        else if (!(e instanceof JetStreamApiError && e.code === JetStreamApiCodes.StreamWrongLastSequence) || attempt >= 20) throw e;
        if (transient) await new Promise((r) => setTimeout(r, 200));
      }
    }
  }

  async read(id: number): Promise<CheckpointMetadata | undefined> {
    const head = await retryJetStream(() => this.kv.get(`checkpoint.${pad(id)}`));
    if (!head || head.operation !== "PUT" || head.value.length === 0) return undefined;
    const h = head.json<{ parts: number }>();
    const parts: string[] = [];
    for (let i = 0; i < h.parts; i++) {
      const p = await retryJetStream(() => this.kv.get(`checkpoint.${pad(id)}.part.${i}`));
      if (!p || p.operation !== "PUT") throw new WeirError(ErrorCode.Checkpoint, `checkpoint ${id} of ${this.bucket} is incomplete (part ${i} missing)`);
      parts.push(p.string());
    }
    return JSON.parse(parts.join("")) as CheckpointMetadata;
  }

  /**
   * Stores the metadata, then moves `latest` to it with a CAS on `expectedRevision` (0: must not exist).
   * `latest` keeps the newest `retain` checkpoints' ids; the ones that drop out are deleted by
   * `deleteExpired`.
   */
  async commit(m: CheckpointMetadata, expectedRevision: number, retain = Number.POSITIVE_INFINITY, beforePointer?: () => Promise<void>): Promise<number> {
    const text = JSON.stringify(m);
    // Parts within the server's max_payload, in characters: up to 3 bytes each unless the text is ASCII.
    const budget = payloadBudget(this.nc.info?.max_payload, PART_BYTES, 8 * 1024);
    const partChars = Buffer.byteLength(text) === text.length ? budget : Math.floor(budget / 3);
    const parts = Math.max(1, Math.ceil(text.length / partChars));
    // Puts of the same value are safe to repeat: retried through leader elections.
    for (let i = 0; i < parts; i++) await retryJetStream(() => this.kv.put(`checkpoint.${pad(m.id)}.part.${i}`, text.slice(i * partChars, (i + 1) * partChars)));
    const headSeq = await retryJetStream(() => this.kv.put(`checkpoint.${pad(m.id)}`, JSON.stringify({ parts, kind: m.kind, completedAt: m.completedAt })));
    await beforePointer?.();
    const before = await this.retainedBefore(expectedRevision);
    const all = m.kind === "checkpoint" ? [...before, m.id] : [...before];
    const keep = Math.max(0, all.length - retain);
    const pointer: LatestPointer = { id: m.id, kind: m.kind, completedAt: m.completedAt, retained: all.slice(keep) };
    let revision: number | "moved";
    try {
      revision = await this.appendAfter("latest", JSON.stringify(pointer), headSeq, expectedRevision)
        ?? await this.compareAndAppend("latest", (current) => ((current?.revision ?? 0) === expectedRevision ? JSON.stringify(pointer) : "moved"), JSON.stringify(pointer));
    } catch (e) {
      this.known = undefined;
      throw new WeirError(ErrorCode.Checkpoint, `checkpoint ${m.id} could not be committed: ${(e as Error).message}`, { cause: e });
    }
    if (revision === "moved") {
      this.known = undefined;
      throw new LatestMovedError(m.id, expectedRevision);
    }
    this.known = { pointer, revision };
    this.expired.push(...all.slice(0, keep));
    return revision;
  }

  /** The retained ids `latest` names at `revision` (read once if this store has not seen it). */
  private async retainedBefore(revision: number): Promise<readonly number[]> {
    if (revision === 0) return [];
    if (this.known?.revision !== revision) await this.latest();
    const k = this.known;
    if (k?.revision !== revision) return []; // moved meanwhile: the CAS will fail
    if (k.pointer.retained) return k.pointer.retained;
    // A pointer written before retained ids were tracked: list once.
    const ids: number[] = [];
    for (const id of await this.list()) if (id <= k.pointer.id && (await this.kindOf(id)) === "checkpoint") ids.push(id);
    return ids;
  }

  /** Deletes the checkpoints the last commits dropped from the retention (known ids, no listing). */
  async deleteExpired(): Promise<void> {
    while (this.expired.length > 0) {
      await this.delete(this.expired[0]!);
      this.expired.shift();
    }
  }

  /**
   * Once per run: deletes checkpoints older than the latest that it does not retain (left by a crash
   * between a commit and its deletes, or by a retention change). Savepoints are kept.
   */
  async sweep(): Promise<number> {
    const latest = await this.latest();
    if (!latest?.pointer.retained) return 0;
    const keep = new Set(latest.pointer.retained);
    let n = 0;
    for (const id of await this.list()) {
      if (id >= latest.pointer.id || keep.has(id) || (await this.kindOf(id)) !== "checkpoint") continue;
      await this.delete(id);
      n++;
    }
    return n;
  }

  /**
   * Reserves `count` checkpoint ids after every id this job has ever used (or `after`), so that no two
   * runs use the same id: ids name changelog messages and committed sink output, and the streams' duplicate
   * windows would take a reused id for a retry. With `expected` (the end of the caller's previous block)
   * it fails when another run reserved in between. Returns the first and last id of the block.
   */
  async reserveIds(after: number, count: number, expected?: number): Promise<{ first: number; last: number }> {
    let block: { first: number; last: number } | undefined;
    let found = 0;
    let r: number | "moved";
    try {
      r = await this.compareAndAppend("ids", (current) => {
        found = current ? Number(current.value) : 0;
        if (expected !== undefined && found !== expected) return "moved";
        const first = Math.max(found, after) + 1;
        block = { first, last: first + count - 1 };
        return String(block.last);
      });
    } catch (err) {
      throw new WeirError(ErrorCode.Checkpoint, `checkpoint ids of ${this.bucket} could not be reserved: ${(err as Error).message}`, { cause: err });
    }
    if (r === "moved" || !block) {
      throw new WeirError(ErrorCode.Checkpoint, `checkpoint ids of ${this.bucket} were reserved by another run (expected ${expected ?? "none"}, found ${found})`);
    }
    return block;
  }

  /**
   * Ids of stored checkpoints, oldest first: the subjects the bucket's stream holds (one stream info; a KV
   * key listing would leave an ordered consumer on the stream for minutes). A deleted checkpoint is purged,
   * so it leaves no subject behind.
   */
  async list(): Promise<number[]> {
    const prefix = `$KV.${this.bucket}.checkpoint.`;
    const info = await retryJetStream(() => this.jsm.streams.info(this.stream, { subjects_filter: `${prefix}*` }));
    const ids: number[] = [];
    for (const subject of Object.keys(info.state.subjects ?? {})) {
      const m = /^(\d+)$/.exec(subject.slice(prefix.length));
      if (m) ids.push(Number(m[1]));
    }
    return ids.sort((a, b) => a - b);
  }

  async kindOf(id: number): Promise<CheckpointKind | undefined> {
    const head = await this.kv.get(`checkpoint.${pad(id)}`);
    if (!head || head.operation !== "PUT" || head.value.length === 0) return undefined;
    return head.json<{ kind: CheckpointKind }>().kind;
  }

  /** Removes the checkpoint's messages from the bucket's stream: no delete or purge marker stays behind. */
  async delete(id: number): Promise<void> {
    const subject = `$KV.${this.bucket}.checkpoint.${pad(id)}`;
    await purgeSubject(this.jsm, this.stream, `${subject}.part.>`, undefined, this.replicas);
    await purgeSubject(this.jsm, this.stream, subject, undefined, this.replicas);
  }
}
