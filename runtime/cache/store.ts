// Where DataStream.cache() (FLIP-205) keeps a cached stream: one JetStream stream per environment,
// `weir_<job>_cache_<env>`, one subject per cached stream and writing subtask. Records go in frames of
// up to ~256 KB (chunked appends are the cheap way to make data durable on JetStream, measured on nats-server 2.9.10); each
// subtask ends its subject with an end frame carrying its record count, so a reader can tell a complete
// cache from a cut one and never drops records silently.

import type { NatsConnection } from "@nats-io/transport-node";
import { DeliverPolicy, jetstream, jetstreamManager, type JsMsg } from "@nats-io/jetstream";
import type { SinkDef, SinkWriter, SourceDef, SourceReader } from "../contracts/connectors.ts";
import { ErrorCode, WeirError } from "../core/errors.ts";
import { ConnectorNames, type JobNames } from "../core/names.ts";
import { ensureStream } from "../nats/streams.ts";

const FRAME_CHARS = 256 * 1024;
/** Frames being acknowledged at once per writer; more and `write` waits (backpressure). */
const FRAMES_IN_FLIGHT = 8;

/** A frame of a cached stream: records with their timestamps, or the end with the subtask's count. */
type CacheFrame =
  | { readonly k: "r"; readonly v: unknown[]; readonly t: Array<number | null> }
  | { readonly k: "e"; readonly n: number };

/** One environment's cached streams. */
export class CacheStore {
  private ready: Promise<void> | undefined;
  private readonly connectorNames: ConnectorNames;
  private readonly replicas: number;

  constructor(private readonly nc: () => Promise<NatsConnection>, names: JobNames, readonly env: string) {
    this.replicas = names.replicas;
    this.connectorNames = new ConnectorNames(names);
  }

  get stream(): string { return this.connectorNames.cacheStream(this.env); }

  subject(cacheUid: string, subtask: number): string { return this.connectorNames.cacheSubject(this.env, cacheUid, subtask); }

  ensure(): Promise<void> {
    return (this.ready ??= (async () => {
      await ensureStream(await jetstreamManager(await this.nc()), { name: this.stream, subjects: [this.connectorNames.cacheSubjects(this.env)], num_replicas: this.replicas });
    })().catch((e: unknown) => {
      this.ready = undefined;
      throw new WeirError(ErrorCode.Sink, `cannot create the cache stream ${this.stream}: ${(e as Error).message}`, { cause: e });
    }));
  }

  /** Drops one cached stream's frames (a failed production, or invalidate()). */
  async purge(cacheUid: string): Promise<void> {
    if (!this.ready) return;
    const jsm = await jetstreamManager(await this.nc());
    await jsm.streams.purge(this.stream, { filter: this.connectorNames.cacheFilter(this.env, cacheUid) }).catch(() => {});
  }

  /** Deletes the stream and every cached stream in it (the environment closes). */
  async destroy(nc: NatsConnection): Promise<void> {
    if (!this.ready) return;
    this.ready = undefined;
    const jsm = await jetstreamManager(nc);
    await jsm.streams.delete(this.stream).catch(() => {});
  }

  /** The sink that writes cached stream `cacheUid`, one subject per subtask. */
  writer(cacheUid: string): SinkDef<unknown> {
    return {
      kind: "cache",
      createWriter: async (ctx) => {
        await this.ensure();
        return new CacheWriter(jetstream(ctx.nc), this.subject(cacheUid, ctx.subtaskIndex), this.stream);
      },
    };
  }

  /** The bounded source that reads cached stream `cacheUid` back, subtask i reading what subtask i wrote. */
  reader(cacheUid: string, name: string): SourceDef<unknown> {
    return {
      kind: "cache",
      bounded: true,
      createReader: async (ctx) => {
        await this.ensure();
        return openCacheReader(ctx.nc, this.stream, this.subject(cacheUid, ctx.subtaskIndex), name);
      },
    };
  }
}

class CacheWriter implements SinkWriter<unknown> {
  private values: unknown[] = [];
  private timestamps: Array<number | null> = [];
  private chars = 0;
  private count = 0;
  private readonly acks = new Set<Promise<unknown>>();
  private failure: unknown;

  constructor(private readonly js: ReturnType<typeof jetstream>, private readonly subject: string, private readonly stream: string) {}

  write(value: unknown, timestamp: number | undefined): void | Promise<void> {
    const json = JSON.stringify(value);
    if (json === undefined) throw new WeirError(ErrorCode.Sink, `cache ${this.subject}: a record that JSON cannot hold (${typeof value})`);
    this.values.push(value);
    this.timestamps.push(timestamp ?? null);
    this.count++;
    this.chars += json.length + 8;
    if (this.chars >= FRAME_CHARS) return this.send();
  }

  async flush(): Promise<void> {
    if (this.values.length > 0) await this.send();
    await Promise.all(this.acks);
    if (this.failure) throw this.failure;
  }

  /** Ends the subject with the record count: what makes the cache complete for a reader. */
  async close(): Promise<void> {
    await this.flush();
    await this.publish({ k: "e", n: this.count });
    await Promise.all(this.acks);
    if (this.failure) throw this.failure;
  }

  private send(): Promise<void> | void {
    const frame: CacheFrame = { k: "r", v: this.values, t: this.timestamps };
    this.values = [];
    this.timestamps = [];
    this.chars = 0;
    return this.publish(frame);
  }

  private publish(frame: CacheFrame): Promise<void> | void {
    if (this.failure) throw this.failure;
    const ack = this.js.publish(this.subject, JSON.stringify(frame)).then(
      () => { this.acks.delete(ack); },
      (e: unknown) => { this.acks.delete(ack); this.failure ??= new WeirError(ErrorCode.Sink, `writing the cache to stream ${this.stream} failed: ${(e as Error).message}`, { cause: e }); },
    );
    this.acks.add(ack);
    if (this.acks.size >= FRAMES_IN_FLIGHT) return Promise.race(this.acks).then(() => undefined);
  }
}

async function openCacheReader(nc: NatsConnection, stream: string, subject: string, name: string): Promise<SourceReader<unknown>> {
  const incomplete = (got: number, detail: string) =>
    new WeirError(ErrorCode.Source, `cached stream "${name}" is incomplete in ${stream} (${subject}): ${detail} after ${got} records; invalidate() it and run again`);
  const consumer = await jetstream(nc).consumers.get(stream, { filter_subjects: subject, deliver_policy: DeliverPolicy.All });
  const info = await consumer.info(true);
  if (info.num_pending === 0) throw incomplete(0, "no end frame");
  const messages = await consumer.consume({ max_messages: 16, idle_heartbeat: 1000, expires: 5000 });
  const it = messages[Symbol.asyncIterator]();
  let read = 0;
  let ended = false;
  return {
    async pollNext() {
      if (ended) return null;
      const next = await it.next();
      if (next.done) throw incomplete(read, "the stream ended without an end frame");
      const frame = (next.value as JsMsg).json<CacheFrame>();
      if (frame.k === "e") {
        ended = true;
        if (frame.n !== read) throw incomplete(read, `the writer counted ${frame.n} records`);
        return null;
      }
      read += frame.v.length;
      return { values: frame.v, timestamps: frame.t.map((t) => t ?? undefined) };
    },
    async close() { await messages.close().catch(() => {}); },
  };
}
