// Where DataStream.cache() (FLIP-205) keeps a cached stream: one JetStream stream per environment,
// `weir_<job>_cache_<env>`, one subject per cached stream and writing subtask. Records go in frames of
// up to ~256 KB (chunked appends are the cheap way to make data durable on JetStream, measured on nats-server 2.9.10); each
// subtask ends its subject with an end frame carrying its record and frame counts, so a reader can tell a
// complete cache from a cut one and never drops records silently. Before an execution reads a cache, the
// environment `check()`s it; a lost one (stream deleted, messages purged) is computed again (FLIP-205).
// The stream's description names its owner (owners.ts) so caches of dead processes can be removed.

import { randomBytes } from "node:crypto";
import type { NatsConnection } from "@nats-io/transport-node";
import { DeliverPolicy, jetstream, jetstreamManager, type JsMsg } from "@nats-io/jetstream";
import type { SinkDef, SinkWriter, SourceDef, SourceReader } from "../contracts/connectors.ts";
import { ErrorCode, WeirError } from "../core/errors.ts";
import { ConnectorNames, type JobNames } from "../core/names.ts";
import { ensureStream } from "../nats/streams.ts";
import { purgeSubject } from "../../state/backends/jetstream-purge.ts";
import { payloadBudget } from "../../state/backends/payload-budget.ts";
import type { LogFn } from "../core/log.ts";
import { OWNER_HEARTBEAT_MS, dropDeadCaches, ownerDescription } from "./owners.ts";

const FRAME_BYTES = 256 * 1024;
/** Frames being acknowledged at once per writer; more and `write` waits (backpressure). */
const FRAMES_IN_FLIGHT = 8;
const PUBLISH_TIMEOUT_MS = 30_000;
const PUBLISH_ATTEMPTS = 3;

/** A frame of a cached stream: records with their timestamps, or the end with the subtask's count. */
type CacheFrame =
  | { readonly k: "r"; readonly v: unknown[]; readonly t: Array<number | null> }
  | { readonly k: "e"; readonly n: number; readonly f?: number };

/** One environment's cached streams. */
export class CacheStore {
  private ready: Promise<void> | undefined;
  private sweep: Promise<void> | undefined;
  private heartbeat: NodeJS.Timeout | undefined;
  private readonly connectorNames: ConnectorNames;
  private readonly replicas: number;
  private readonly job: string;

  constructor(private readonly nc: () => Promise<NatsConnection>, names: JobNames, readonly env: string, private readonly log: LogFn = () => {}) {
    this.replicas = names.replicas;
    this.job = names.job;
    this.connectorNames = new ConnectorNames(names);
  }

  get stream(): string { return this.connectorNames.cacheStream(this.env); }

  subject(cacheUid: string, subtask: number): string { return this.connectorNames.cacheSubject(this.env, cacheUid, subtask); }

  /**
   * Forget that the stream was created: each execution that writes makes sure it exists again (it may
   * have been deleted behind the environment's back since the last one).
   */
  beginExecution(): void { this.ready = undefined; }

  ensure(): Promise<void> {
    return (this.ready ??= (async () => {
      const jsm = await jetstreamManager(await this.nc());
      await ensureStream(jsm, { name: this.stream, subjects: [this.connectorNames.cacheSubjects(this.env)], num_replicas: this.replicas, description: ownerDescription(this.job, this.env) });
      this.startHeartbeat();
      // Once per environment: remove the caches of environments that died before close().
      this.sweep ??= dropDeadCaches(jsm, this.stream).then((dropped) => {
        for (const d of dropped) this.log(`removed cache stream ${d.stream} (job ${d.job}): its owner is dead (${d.liveness.why})`);
      }, () => {});
    })().catch((e: unknown) => {
      this.ready = undefined;
      throw new WeirError(ErrorCode.Sink, `cannot create the cache stream ${this.stream}: ${(e as Error).message}`, { cause: e });
    }));
  }

  /** Refreshes the owner's heartbeat in the stream description (owners.ts: the liveness rule). */
  private startHeartbeat(): void {
    if (this.heartbeat) return;
    this.heartbeat = setInterval(() => {
      void (async () => {
        const jsm = await jetstreamManager(await this.nc());
        await jsm.streams.update(this.stream, { description: ownerDescription(this.job, this.env) });
      })().catch(() => {}); // a deleted stream is found (and recomputed) when a cache is next read
    }, OWNER_HEARTBEAT_MS);
    this.heartbeat.unref();
  }

  /** Drops one cached stream's frames (a failed production, or invalidate()). */
  async purge(cacheUid: string): Promise<void> {
    const jsm = await jetstreamManager(await this.nc());
    await purgeSubject(jsm, this.stream, this.connectorNames.cacheFilter(this.env, cacheUid), undefined, this.replicas).catch(() => {});
  }

  /** Deletes the stream and every cached stream in it (the environment closes). */
  async destroy(nc: NatsConnection): Promise<void> {
    clearInterval(this.heartbeat);
    this.heartbeat = undefined;
    if (!this.ready) return;
    this.ready = undefined;
    const jsm = await jetstreamManager(nc);
    await jsm.streams.delete(this.stream).catch(() => {});
  }

  /**
   * Why cached stream `cacheUid`, written by `parallelism` subtasks, cannot be read back in full, or
   * undefined when it can: the stream is gone, a subject has no end frame, or it holds fewer frames than
   * its end frame counts (messages purged or expired). One stream info and one message per subtask.
   */
  async check(cacheUid: string, parallelism: number): Promise<string | undefined> {
    const jsm = await jetstreamManager(await this.nc());
    let counts: Record<string, number>;
    try {
      const info = await jsm.streams.info(this.stream, { subjects_filter: this.connectorNames.cacheFilter(this.env, cacheUid) });
      counts = info.state.subjects ?? {};
    } catch (e) {
      if (/stream not found/i.test((e as Error).message)) return `its stream ${this.stream} was deleted`;
      throw new WeirError(ErrorCode.Source, `cannot check the cache stream ${this.stream}: ${(e as Error).message}`, { cause: e });
    }
    for (let i = 0; i < parallelism; i++) {
      const subject = this.subject(cacheUid, i);
      const held = counts[subject] ?? 0;
      if (held === 0) return `subtask ${i}'s records are gone from ${this.stream} (${subject})`;
      const last = await jsm.streams.getMessage(this.stream, { last_by_subj: subject }).catch(() => null);
      const frame = last?.json<CacheFrame>();
      if (!frame || frame.k !== "e") return `${subject} has no end frame`;
      if (frame.f !== undefined && held !== frame.f + 1) return `${subject} holds ${held - 1} of its ${frame.f} frames (messages purged or expired)`;
    }
    return undefined;
  }

  /** The sink that writes cached stream `cacheUid`, one subject per subtask. */
  writer(cacheUid: string): SinkDef<unknown> {
    return {
      kind: "cache",
      createWriter: async (ctx) => {
        await this.ensure();
        return new CacheWriter(jetstream(ctx.nc), this.subject(cacheUid, ctx.subtaskIndex), this.stream, ctx.nc.info?.max_payload);
      },
    };
  }

  /** The bounded source that reads cached stream `cacheUid` back, subtask i reading what subtask i wrote. */
  reader(cacheUid: string, name: string): SourceDef<unknown> {
    return {
      kind: "cache",
      bounded: true,
      createReader: (ctx) => openCacheReader(ctx.nc, this.stream, this.subject(cacheUid, ctx.subtaskIndex), name),
    };
  }
}

class CacheWriter implements SinkWriter<unknown> {
  private values: unknown[] = [];
  private timestamps: Array<number | null> = [];
  private chars = 0;
  private count = 0;
  private frames = 0;
  private published = 0;
  private readonly token = randomBytes(6).toString("hex");
  private readonly acks = new Set<Promise<unknown>>();
  private failure: unknown;

  /** What a frame may hold: the server's max_payload may be well under 256 KB. */
  private readonly frameBytes: number;

  constructor(private readonly js: ReturnType<typeof jetstream>, private readonly subject: string, private readonly stream: string, maxPayload: number | undefined) {
    this.frameBytes = payloadBudget(maxPayload, FRAME_BYTES, 4096);
  }

  write(value: unknown, timestamp: number | undefined): void | Promise<void> {
    const json = JSON.stringify(value);
    if (json === undefined) throw new WeirError(ErrorCode.Sink, `cache ${this.subject}: a record that JSON cannot hold (${typeof value})`);
    const bytes = Buffer.byteLength(json) + 16;
    // The frame so far goes first if this record would take it over (a frame over max_payload fails).
    const before = this.values.length > 0 && this.chars + bytes > this.frameBytes ? this.send() : undefined;
    this.values.push(value);
    this.timestamps.push(timestamp ?? null);
    this.count++;
    this.chars += bytes;
    const after = this.chars >= this.frameBytes ? this.send() : undefined;
    return before && after ? Promise.all([before, after]).then(() => undefined) : (before ?? after);
  }

  async flush(): Promise<void> {
    if (this.values.length > 0) await this.send();
    await Promise.all(this.acks);
    if (this.failure) throw this.failure;
  }

  /** Ends the subject with the record count: what makes the cache complete for a reader. */
  async close(): Promise<void> {
    await this.flush();
    await this.publish({ k: "e", n: this.count, f: this.frames });
    await Promise.all(this.acks);
    if (this.failure) throw this.failure;
  }

  private send(): Promise<void> | void {
    const frame: CacheFrame = { k: "r", v: this.values, t: this.timestamps };
    this.values = [];
    this.timestamps = [];
    this.chars = 0;
    this.frames++;
    return this.publish(frame);
  }

  private publish(frame: CacheFrame): Promise<void> | void {
    if (this.failure) throw this.failure;
    const data = JSON.stringify(frame);
    // A message id per writer and frame makes a retry after a lost ack safe (deduplicated by the stream).
    const msgID = `${this.token}:${this.published++}`;
    const ack = this.publishWithRetry(data, msgID).then(
      () => { this.acks.delete(ack); },
      (e: unknown) => { this.acks.delete(ack); this.failure ??= writeError(this.stream, e); },
    );
    this.acks.add(ack);
    if (this.acks.size >= FRAMES_IN_FLIGHT) return Promise.race(this.acks).then(() => undefined);
  }

  /** An ack can be late on a loaded machine (a CPU-bound batch job): wait longer, and retry a timeout. */
  private async publishWithRetry(data: string, msgID: string): Promise<void> {
    for (let attempt = 1; ; attempt++) {
      try {
        await this.js.publish(this.subject, data, { msgID, timeout: PUBLISH_TIMEOUT_MS });
        return;
      } catch (e) {
        if (attempt >= PUBLISH_ATTEMPTS || !/timeout/i.test((e as Error).message)) throw e;
      }
    }
  }
}

/** A publish with no stream behind its subject surfaces as "no responders" / "jetstream is not enabled". */
function writeError(stream: string, e: unknown): WeirError {
  const message = (e as Error).message;
  const why = /no responders|not enabled|503/i.test(message)
    ? `the stream no longer exists (deleted while this execution wrote it; the next execution computes the cache again)`
    : message;
  return new WeirError(ErrorCode.Sink, `writing the cache to stream ${stream} failed: ${why}`, { cause: e });
}

/** A cached stream found lost or cut while read: the environment computes it again in its next execution. */
export class CacheLostError extends WeirError {
  constructor(readonly stream: string, readonly subject: string, name: string, detail: string, cause?: unknown) {
    super(ErrorCode.Source, `cached stream "${name}" was lost while this execution read it (${stream}, ${subject}: ${detail}); the next execution computes it again`, cause === undefined ? undefined : { cause });
    this.name = "CacheLostError";
  }
}

async function openCacheReader(nc: NatsConnection, stream: string, subject: string, name: string): Promise<SourceReader<unknown>> {
  const lost = (detail: string, cause?: unknown) => new CacheLostError(stream, subject, name, detail, cause);
  let consumer;
  try {
    consumer = await jetstream(nc).consumers.get(stream, { filter_subjects: subject, deliver_policy: DeliverPolicy.All });
  } catch (e) {
    if (/stream not found/i.test((e as Error).message)) throw lost("the stream was deleted", e);
    throw e;
  }
  const info = await consumer.info(true);
  if (info.num_pending === 0) throw lost("no records and no end frame");
  const messages = await consumer.consume({ max_messages: 16, idle_heartbeat: 1000, expires: 5000 });
  const it = messages[Symbol.asyncIterator]();
  let read = 0;
  let ended = false;
  return {
    async pollNext() {
      if (ended) return null;
      const next = await it.next();
      if (next.done) throw lost(`the stream ended without an end frame after ${read} records`);
      const frame = (next.value as JsMsg).json<CacheFrame>();
      if (frame.k === "e") {
        ended = true;
        if (frame.n !== read) throw lost(`read ${read} records, the writer counted ${frame.n}`);
        return null;
      }
      read += frame.v.length;
      return { values: frame.v, timestamps: frame.t.map((t) => t ?? undefined) };
    },
    async close() { await messages.close().catch(() => {}); },
  };
}
