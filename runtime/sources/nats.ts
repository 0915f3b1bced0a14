// Sources.nats({ subject, queue?, format?, codec? }): a core NATS subscription, at-most-once, unbounded.
// Every subtask joins one queue group (default `weir.<job>.<uid>`), so each message reaches one subtask.
// Nothing is replayed after a restart; offsets are not checkpointed. `metadata: true` gives each record
// as `{ subject, data, headers, reply? }` (message-metadata.ts).
//
// Core NATS has no flow control: while the job is backpressured, messages wait in this reader's buffer,
// up to `maxBuffered` (default 100k); beyond that they are dropped (the server would otherwise cut the
// connection as a slow consumer). Drops are counted and logged, never silent.

import * as t from "io-ts";
import type { Msg, Subscription } from "@nats-io/transport-node";
import type { SourceDef, SourceReader } from "../contracts/connectors.ts";
import { ConnectorNames } from "../core/names.ts";
import { PositiveInt, decodeOptions } from "../core/validation.ts";
import { PayloadFormat, REJECTED, assertCodec, payloadDecoder, type Codec } from "./decode.ts";
import { Wakeup } from "./wakeup.ts";
import { flushConnection } from "../nats/flush.ts";
import { assertMetadataFormat, headersOf, type NatsMessage } from "./message-metadata.ts";

export interface NatsSourceOptions<T> {
  readonly subject: string;
  /** Queue group shared by the subtasks; default `weir.<job>.<operator uid>`. */
  readonly queue?: string;
  readonly format?: PayloadFormat;
  readonly codec?: Codec<T>;
  /** Messages buffered while the job is backpressured before new ones are dropped. Default 100000. */
  readonly maxBuffered?: number;
  /** Each record as `{ subject, data, headers, reply? }` instead of the decoded payload alone. Default false. */
  readonly metadata?: boolean;
}

const Options = t.intersection([
  t.type({ subject: t.refinement(t.string, (s) => s.length > 0 && !/\s/.test(s), "Subject") }),
  t.partial({
    queue: t.refinement(t.string, (s) => s.length > 0 && !/[\s*>]/.test(s), "QueueName"),
    format: t.keyof({ json: null, text: null, bytes: null }),
    /** An io-ts codec, checked by assertCodec. */
    codec: t.unknown,
    maxBuffered: PositiveInt,
    metadata: t.boolean,
  }),
]);

const DROP_LOG_INTERVAL_MS = 5000;

export function natsSource<T>(options: NatsSourceOptions<T> & { readonly codec: Codec<T>; readonly metadata: true }): SourceDef<NatsMessage<T>>;
export function natsSource(options: NatsSourceOptions<string> & { readonly format: "text"; readonly metadata: true }): SourceDef<NatsMessage<string>>;
export function natsSource<T = unknown>(options: NatsSourceOptions<T> & { readonly metadata: true }): SourceDef<NatsMessage<T>>;
export function natsSource<T>(options: NatsSourceOptions<T> & { readonly codec: Codec<T> }): SourceDef<T>;
export function natsSource(options: NatsSourceOptions<string> & { readonly format: "text" }): SourceDef<string>;
export function natsSource(options: NatsSourceOptions<Uint8Array> & { readonly format: "bytes" }): SourceDef<Uint8Array>;
export function natsSource<T = unknown>(options: NatsSourceOptions<T>): SourceDef<T>;
export function natsSource<T = unknown>(options: NatsSourceOptions<T>): SourceDef<T> {
  decodeOptions(Options, options, "Sources.nats", "Sources.nats options");
  assertCodec("Sources.nats", options.codec);
  const format = options.format ?? PayloadFormat.Json;
  const metadata = options.metadata ?? false;
  assertMetadataFormat("Sources.nats", metadata, format);
  const maxBuffered = options.maxBuffered ?? 100_000;
  return {
    kind: "nats",
    bounded: false,
    settings: options,
    async createReader(ctx): Promise<SourceReader<T>> {
      const queue = options.queue ?? new ConnectorNames(ctx.names).sourceQueue(ctx.operatorUid);
      const decode = payloadDecoder(format, options.codec, `${ctx.operatorName} (nats ${options.subject})`, ctx.deadLetters);
      const wake = new Wakeup();
      let buffer: Msg[] = [];
      let dropped = 0;
      let lastDropLog = 0;
      const sub: Subscription = ctx.nc.subscribe(options.subject, {
        queue,
        callback: (err, msg) => {
          if (err) return;
          if (buffer.length >= maxBuffered) {
            dropped++;
            const now = Date.now();
            if (now - lastDropLog > DROP_LOG_INTERVAL_MS) {
              lastDropLog = now;
              ctx.log(`Sources.nats "${options.subject}": buffer full (${maxBuffered}), ${dropped} messages dropped so far`);
            }
            return;
          }
          buffer.push(msg);
          wake.notify();
        },
      });
      // The subscription must reach the server before the job counts as running (tests publish right after).
      await flushConnection(ctx.nc);
      return {
        async pollNext(_maxRecords, maxWaitMs) {
          if (buffer.length === 0) await wake.wait(maxWaitMs);
          const msgs = buffer;
          buffer = [];
          const values: T[] = [];
          for (const m of msgs) {
            const v = decode(m.data, m.subject, undefined);
            if (v === REJECTED) continue;
            if (!metadata) values.push(v);
            else {
              const record: NatsMessage<T> = { subject: m.subject, data: v, headers: headersOf(m.headers), ...(m.reply ? { reply: m.reply } : {}) };
              values.push(record as T);
            }
          }
          return { values };
        },
        interrupt: () => wake.notify(),
        takeAttributes: (() => {
          let reported = false;
          // A live subscription is never backlog; say so once at start.
          return () => (reported ? undefined : ((reported = true), { isBacklog: false }));
        })(),
        snapshotState: () => ({ dropped }),
        async close() {
          if (!sub.isClosed()) sub.unsubscribe();
        },
      };
    },
  };
}
