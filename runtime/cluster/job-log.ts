// The fenced log of a distributed job: one JetStream stream per job holding lease, deploy and commit
// records, each subject (record kind) keeping its last record. Every append names the sequence it expects
// the stream to end at (Nats-Expected-Last-Sequence), so of two writers that read the same log exactly one
// succeeds. A stream append is used rather than KV compare-and-set with a revision because on nats-server
// 2.9.10 the KV check runs only on the stream leader before proposing, and two updates can both succeed
// on a replicated bucket (nats-io/nats-server#4320, #3375, fixed in 2.9.21); the expected last sequence
// is checked again on every replica as it applies the message.

import * as t from "io-ts";
import type { NatsConnection, Subscription } from "@nats-io/transport-node";
import { jetstream, jetstreamManager, JetStreamApiCodes, JetStreamApiError, StorageType, type JetStreamClient, type JetStreamManager } from "@nats-io/jetstream";
import { ErrorCode, WeirError, messageOf } from "../core/errors.ts";
import type { JobNames } from "../core/names.ts";
import { decodeOptions, decodeOrThrow, NonNegativeInt, PositiveInt, FunctionOption } from "../core/validation.ts";
import { ensureStream } from "../nats/streams.ts";
import { flushConnection } from "../nats/flush.ts";
import { jetStreamMissing } from "../nats/jetstream-ready.ts";

export const JobLogKind = { Lease: "lease", Deploy: "deploy", Commit: "commit", End: "end" } as const;
export type JobLogKind = (typeof JobLogKind)[keyof typeof JobLogKind];

export type JobLogRecord =
  | { kind: "lease"; leader: string; epoch: number; released?: boolean }
  /** `lineage`: the run's (runtime/checkpoint/metadata.ts), which a takeover continues; absent in records of earlier versions. */
  | { kind: "deploy"; leader: string; epoch: number; restoreId?: number; lineage?: string; assignment: Record<string, string[]> }
  | { kind: "commit"; leader: string; epoch: number; checkpointId: number }
  /** The job ended (a bounded job finished, `weir stop`, a failure): workers started before it end too. */
  | { kind: "end"; leader: string; epoch: number; state: "finished" | "stopped" | "cancelled" | "failed"; failure?: string };

const Fenced = { leader: t.string, epoch: NonNegativeInt };
const LeaseCodec = t.intersection([t.type({ kind: t.literal("lease"), ...Fenced }), t.partial({ released: t.boolean })]);
const DeployCodec = t.intersection([
  t.type({ kind: t.literal("deploy"), ...Fenced, assignment: t.record(t.string, t.array(t.string)) }),
  t.partial({ restoreId: NonNegativeInt, lineage: t.string }),
]);
const CommitCodec = t.type({ kind: t.literal("commit"), ...Fenced, checkpointId: NonNegativeInt });
const EndCodec = t.intersection([
  t.type({ kind: t.literal("end"), ...Fenced, state: t.keyof({ finished: null, stopped: null, cancelled: null, failed: null }) }),
  t.partial({ failure: t.string }),
]);
export const JobLogRecordCodec = t.union([LeaseCodec, DeployCodec, CommitCodec, EndCodec]);

export interface JobLogOptions {
  /** Stream replicas (1 on a single server; 3 on a 3-node cluster to survive the loss of one). */
  readonly replicas?: number;
  /** Timeout of each JetStream request (ms); default the client's (5 s). */
  readonly timeoutMs?: number;
  /** Where a malformed record seen by `watch` is reported (once); default stderr. */
  readonly log?: (line: string) => void;
}
const JobLogOptionsCodec = t.partial({ replicas: PositiveInt, timeoutMs: PositiveInt, log: FunctionOption });

/** nats.js's timeout of a JetStream request when none is given (@nats-io/jetstream, jsbaseclient_api.js). */
const NATS_JS_DEFAULT_TIMEOUT_MS = 5000;

export interface LogEntry<R extends JobLogRecord = JobLogRecord> { readonly seq: number; readonly record: R }

export class JobLog {
  private warnedMalformed = false;

  private constructor(
    private readonly nc: NatsConnection,
    private readonly names: JobNames,
    private readonly jsm: JetStreamManager,
    private readonly js: JetStreamClient,
    private readonly log: (line: string) => void,
    /** How long an append or a read waits for its answer (the `timeoutMs` option, else nats.js's 5 s). */
    readonly requestTimeoutMs: number,
  ) {}

  /** Creates the job's log stream unless it exists (file storage, reads served by the stream leader). */
  static async open(nc: NatsConnection, names: JobNames, options: JobLogOptions = {}): Promise<JobLog> {
    const o = decodeOptions(JobLogOptionsCodec, options, "JobLog options") as JobLogOptions;
    const jsm = await jetstreamManager(nc, o.timeoutMs === undefined ? {} : { timeout: o.timeoutMs }).catch((e: unknown) => { throw jetStreamMissing(nc, e) ?? e; });
    try {
      await ensureStream(jsm, {
        name: names.logStream,
        subjects: [names.logSubjects],
        storage: StorageType.File,
        num_replicas: o.replicas ?? 1,
        // Followers answer direct gets before they caught up: a lease decision must not read a stale log.
        allow_direct: false,
        max_msgs_per_subject: 1,
        // Watchers subscribe to the copy the stream publishes once it stored a record, so an append the
        // stream rejected (a lost race) is never seen as the log moving.
        republish: { src: names.logSubjects, dest: names.logStoredSubjects },
      });
    } catch (e) {
      throw new WeirError(ErrorCode.Transport, `cannot create the job log stream ${names.logStream}: ${messageOf(e)}`, { cause: e });
    }
    const js = jetstream(nc, o.timeoutMs === undefined ? {} : { timeout: o.timeoutMs });
    return new JobLog(nc, names, jsm, js, o.log ?? ((line) => process.stderr.write(`${line}\n`)), o.timeoutMs ?? NATS_JS_DEFAULT_TIMEOUT_MS);
  }

  /** The connection is closed or draining: no append or read can succeed any more. */
  get closed(): boolean { return this.nc.isClosed() || this.nc.isDraining(); }

  /** The stream's last sequence (0 when empty). */
  async lastSeq(): Promise<number> {
    return (await this.jsm.streams.info(this.names.logStream)).state.last_seq;
  }

  /** The last record of one kind with its sequence, or undefined. */
  async last<K extends JobLogRecord["kind"]>(kind: K): Promise<{ seq: number; record: Extract<JobLogRecord, { kind: K }>; storedAt: Date } | undefined> {
    const m = await this.jsm.streams.getMessage(this.names.logStream, { last_by_subj: this.names.logSubject(kind) });
    if (!m) return undefined;
    const record = this.decode(m.json(), `record ${m.seq}`);
    if (record.kind !== kind) throw new WeirError(ErrorCode.Transport, `job log ${this.names.logStream}: record ${m.seq} on the ${kind} subject is a ${record.kind} record`);
    return { seq: m.seq, record: record as Extract<JobLogRecord, { kind: K }>, storedAt: m.time };
  }

  /** The log's last record and its sequence (`{ seq: 0 }` when the log is empty). */
  async tail(): Promise<{ seq: number; record?: JobLogRecord }> {
    for (;;) {
      const seq = await this.lastSeq();
      if (seq === 0) return { seq };
      const m = await this.jsm.streams.getMessage(this.names.logStream, { seq });
      // Gone: a newer record of its kind replaced it between the two reads; read again.
      if (m) return { seq, record: this.decode(m.json(), `record ${seq}`) };
    }
  }

  /** Appends with Nats-Expected-Last-Sequence: the new seq, or "conflict" when the stream moved on. */
  async append(record: JobLogRecord, expectedLastSeq: number): Promise<number | "conflict"> {
    decodeOrThrow(JobLogRecordCodec, record, "job log record");
    try {
      const ack = await this.js.publish(this.names.logSubject(record.kind), JSON.stringify(record), { expect: { lastSequence: expectedLastSeq } });
      return ack.seq;
    } catch (e) {
      if (e instanceof JetStreamApiError && e.code === JetStreamApiCodes.StreamWrongLastSequence) return "conflict";
      throw new WeirError(ErrorCode.Transport, `cannot append to the job log ${this.names.logStream}: ${messageOf(e)}`, { cause: e });
    }
  }

  /**
   * Every record appended from now on, as it is stored (a core subscription on the subjects the stream
   * republishes stored records to), with its sequence. `ready` resolves once the server has the
   * subscription. A watcher may miss records (core NATS keeps nothing across a disconnect): poll `tail()`.
   */
  watch(onRecord: (record: JobLogRecord, seq: number) => void): { stop(): void; ready: Promise<void> } {
    const sub: Subscription = this.nc.subscribe(this.names.logStoredSubjects, {
      callback: (err, m) => {
        if (err) return;
        let record: JobLogRecord;
        try {
          record = this.decode(m.json(), m.subject);
        } catch (e) {
          if (!this.warnedMalformed) this.log(`job log ${this.names.logStream}: ignoring a malformed record: ${messageOf(e)}`);
          this.warnedMalformed = true;
          return;
        }
        onRecord(record, Number(m.headers?.get("Nats-Sequence") ?? 0));
      },
    });
    return { stop: () => sub.unsubscribe(), ready: flushConnection(this.nc) };
  }

  /** Calls `back` each time this connection comes back after a disconnect (records meanwhile went unseen). */
  watchReconnects(back: () => void): { stop(): void } {
    const status = this.nc.status() as AsyncIterable<{ type: string }> & { stop?: () => void };
    void (async () => { for await (const s of status) if (s.type === "reconnect") back(); })().catch(() => {});
    return { stop: () => status.stop?.() };
  }

  private decode(value: unknown, what: string): JobLogRecord {
    return decodeOrThrow(JobLogRecordCodec, value, `job log ${this.names.logStream} ${what}`, ErrorCode.Transport) satisfies JobLogRecord;
  }
}
