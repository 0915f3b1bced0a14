// Where an exactly-once sink keeps a checkpoint's output between "checkpoint taken" and "checkpoint
// committed": large JSON chunks in the stream `weir_<job>_staging` (chunked appends are the cheap way to
// make data durable on JetStream, measured on nats-server 2.9.10), one subject per sink subtask, purged once committed.

import { isTransientJetStreamError, retryJetStream } from "../../state/backends/jetstream-retry.ts";
import { purgeSubject } from "../../state/backends/jetstream-purge.ts";
import { payloadBudget } from "../../state/backends/payload-budget.ts";
import type { NatsConnection } from "@nats-io/transport-node";
import { jetstream, jetstreamManager } from "@nats-io/jetstream";
import { ErrorCode, WeirError } from "../core/errors.ts";
import { ensureStream } from "../nats/streams.ts";

/** Output records as [subject, payload] pairs (a bytes payload is staged as base64: see stagedJson). */
export type StagedRecord = readonly [subject: string, payload: string | Uint8Array];

/** A staged record in the stream: [subject, text], or [subject, base64, "b"] for a bytes payload. */
type StagedJson = readonly [subject: string, payload: string, bytes?: "b"];

const stagedJson = ([subject, payload]: StagedRecord): StagedJson =>
  typeof payload === "string" ? [subject, payload] : [subject, Buffer.from(payload.buffer, payload.byteOffset, payload.byteLength).toString("base64"), "b"];

const fromStagedJson = ([subject, payload, bytes]: StagedJson): StagedRecord =>
  bytes === "b" ? [subject, new Uint8Array(Buffer.from(payload, "base64"))] : [subject, payload];

/** Where one checkpoint's output of one sink subtask is staged. */
export interface StagedRef {
  readonly checkpointId: number;
  /** The sink subtask that wrote it (part of its message ids). */
  readonly subtask: number;
  readonly firstSeq: number;
  readonly lastSeq: number;
  readonly records: number;
}

const CHUNK_BYTES = 256 * 1024;
/** Room kept under the server's max_payload for headers (the message id) and the protocol line. */
const PAYLOAD_MARGIN = 4096;

/**
 * One record too large for a chunk of its own, in consecutive messages of this shape: `text` slices of
 * the record's JSON, joined again by read().
 */
interface StagedPart { readonly part: number; readonly of: number; readonly text: string }
/**
 * No `$JS.API.INFO` round trip first: only the meta leader answers it, so while one is elected (a server
 * of a cluster lost) it times out, unretried, where the calls that follow are retried.
 */
const NO_API_CHECK = { checkAPI: false } as const;

export class StagingArea {
  private ready: Promise<void> | undefined;
  /** Where the newest checkpoint whose output this sink subtask published in full is recorded. */
  readonly committedSubject: string;

  constructor(private readonly nc: NatsConnection, readonly stream: string, readonly subject: string, private readonly replicas = 1) {
    this.committedSubject = `${subject}.committed`;
  }

  private ensure(): Promise<void> {
    return (this.ready ??= (async () => {
      await ensureStream(await jetstreamManager(this.nc, NO_API_CHECK), { name: this.stream, subjects: [`${this.subject.split(".").slice(0, 3).join(".")}.>`], num_replicas: this.replicas });
    })());
  }

  /** Appends `records` durably; returns where they are. */
  async stage(checkpointId: number, subtask: number, records: readonly StagedRecord[]): Promise<StagedRef | undefined> {
    if (records.length === 0) return undefined;
    await this.ensure();
    const js = jetstream(this.nc);
    const acks: Array<Promise<{ seq: number }>> = [];
    // A chunk must fit the server's max_payload (1 MB by default, less on some servers): a larger one
    // failed the checkpoint, whatever the size of its records.
    const limit = payloadBudget(this.nc.info?.max_payload, CHUNK_BYTES, PAYLOAD_MARGIN);
    let chunk: string[] = [];
    let size = 2;
    const publish = (data: string) => {
      // An id per message (checkpoint ids are never reused), so a publish retried through a leader election
      // is not staged twice.
      const opts = { msgID: `${this.subject}:${checkpointId}:${acks.length}` };
      acks.push(js.publish(this.subject, data, opts).catch((e: unknown) => {
        if (!isTransientJetStreamError(e)) throw e;
        return retryJetStream(() => js.publish(this.subject, data, opts));
      }));
    };
    const send = () => {
      if (chunk.length) publish(`[${chunk.join(",")}]`);
      chunk = [];
      size = 2;
    };
    for (const r of records) {
      const json = JSON.stringify(stagedJson(r));
      const bytes = Buffer.byteLength(json);
      if (bytes + 2 > limit) {
        send();
        // Slices of at most limit/3 characters: escaped as a JSON string, one takes at most 2 bytes per
        // ASCII character (a quote or backslash) and 3 per other character.
        const slice = Math.floor((limit - 64) / 3);
        const of = Math.ceil(json.length / slice);
        for (let part = 0; part < of; part++) publish(JSON.stringify({ part, of, text: json.slice(part * slice, (part + 1) * slice) } satisfies StagedPart));
        continue;
      }
      if (size + bytes + 1 > limit) send();
      chunk.push(json);
      size += bytes + 1;
    }
    send();
    const seqs = (await Promise.all(acks)).map((a) => a.seq);
    return { checkpointId, subtask, firstSeq: Math.min(...seqs), lastSeq: Math.max(...seqs), records: records.length };
  }

  /**
   * Reads back what `ref` staged (for a commit retried after a restore): the messages of this subject from
   * `firstSeq` to `lastSeq`, read one by one from the stream leader (other subtasks' chunks in between are
   * skipped). No consumer: after a server loss one can stall and deliver nothing. Anything but exactly
   * `ref.records` records is an error: output is never dropped silently.
   */
  async read(ref: StagedRef): Promise<StagedRecord[]> {
    await this.ensure();
    const jsm = await jetstreamManager(this.nc, NO_API_CHECK);
    const out: StagedRecord[] = [];
    const parts: string[] = [];
    for (let seq = ref.firstSeq; seq <= ref.lastSeq; seq++) {
      const m = await retryJetStream(() => jsm.streams.getMessage(this.stream, { seq }).catch((e: unknown) => {
        if (/no message found/i.test((e as Error).message)) return null;
        throw e;
      }));
      if (!m || m.subject !== this.subject) continue;
      const data = m.json<StagedJson[] | StagedPart>();
      if (Array.isArray(data)) {
        for (const r of data) out.push(fromStagedJson(r));
        continue;
      }
      parts.push(data.text);
      if (data.part === data.of - 1) {
        out.push(fromStagedJson(JSON.parse(parts.join("")) as StagedJson));
        parts.length = 0;
      }
    }
    if (out.length !== ref.records) {
      throw new WeirError(ErrorCode.Sink, `the staged output of checkpoint ${ref.checkpointId} (subtask ${ref.subtask}) is incomplete in stream ${this.stream}: ${out.length} of ${ref.records} records`);
    }
    return out;
  }

  /**
   * Records that the output of checkpoint `checkpointId` (and of every earlier one of this subtask: commits
   * run in order) is published in full, so that a restore does not publish it again. Only the newest record
   * is kept.
   */
  async markCommitted(checkpointId: number): Promise<void> {
    await this.ensure();
    const opts = { msgID: `${this.committedSubject}:${checkpointId}` };
    const js = jetstream(this.nc);
    const ack = await retryJetStream(() => js.publish(this.committedSubject, String(checkpointId), opts));
    await purgeSubject(await jetstreamManager(this.nc, NO_API_CHECK), this.stream, this.committedSubject, ack.seq, this.replicas);
  }

  /**
   * Whether `markCommitted` recorded `ref`'s output as published. Besides its checkpoint id, the record
   * must come after `ref` in the stream: checkpoint ids start again at 1 when a job's checkpoint bucket is
   * deleted, and a record left by the run before must not speak for output staged after it.
   */
  async isCommitted(ref: StagedRef): Promise<boolean> {
    const last = await this.lastCommitted();
    return last !== undefined && ref.checkpointId <= last.checkpointId && ref.lastSeq < last.seq;
  }

  /** The newest record of `markCommitted`: its checkpoint id and its own stream sequence. */
  private async lastCommitted(): Promise<{ checkpointId: number; seq: number } | undefined> {
    await this.ensure();
    const jsm = await jetstreamManager(this.nc, NO_API_CHECK);
    const m = await retryJetStream(() => jsm.streams.getMessage(this.stream, { last_by_subj: this.committedSubject }).catch((e: unknown) => {
      if (/no message found/i.test((e as Error).message)) return null;
      throw e;
    }));
    return m ? { checkpointId: Number(m.string()), seq: m.seq } : undefined;
  }

  /** Drops staged chunks up to and including `lastSeq` once committed. */
  async purgeThrough(lastSeq: number): Promise<void> {
    await this.ensure();
    // Repeatable (everything of this subject below lastSeq + 1): retried through a leader election.
    await purgeSubject(await jetstreamManager(this.nc, NO_API_CHECK), this.stream, this.subject, lastSeq + 1, this.replicas);
  }
}
