// Sinks.kv({ bucket, key }): each record's JSON is put under its key (`key` a fixed string, or a function
// of the record giving a string or number). The bucket is created with history 1 when missing (measured:
// history > 1 makes puts ~28× slower on 2.9.10); an existing bucket is used as it is.
//
// Puts of the same key are coalesced: records wait in a map (the latest per key wins) until
// `maxBufferedKeys` distinct keys (default 1000), `lingerMs` (default 50) after the first one, or
// `flush()`; then the map is sent as pipelined puts with at most `maxInFlight` (default 256, where
// ~30k puts/s were measured on 2.9.10) unacknowledged. `write` returns a promise (backpressure) while a full map is being
// handed to the window. Puts go out on one connection in order, so the last write of a key wins even
// across batches. A failed put fails the next write or flush, naming bucket and key.
//
// Keys NATS KV does not allow are encoded reversibly by default (kv-keys.ts: `decodeKvKey` reads them
// back), or rejected with `keyEncoding: "reject"`.
//
// At-least-once by default: puts go out at once, so after a restart from a checkpoint the replayed
// records' values are put again and a reader may see a key's value go back for a moment.
// `delivery: "exactly-once"` (needs checkpoints) makes values visible only when their checkpoint commits
// (kv-exactly-once.ts; no coalescing then: every record is one message).

import * as t from "io-ts";
import { Kvm, type KV } from "@nats-io/kv";
import type { SinkDef, SinkWriter } from "../contracts/connectors.ts";
import { ErrorCode, WeirError, messageOf } from "../core/errors.ts";
import { NonNegativeInt, PositiveInt, decodeOptions } from "../core/validation.ts";
import { InflightWindow } from "./inflight.ts";
import { KeyEncoding, kvKeyFor } from "./kv-keys.ts";
import { rejectRecord, sinkPayload, type SinkPayload } from "./payload.ts";
import { preview } from "../core/preview.ts";
import { MAX_SUBJECT_BYTES } from "./subject.ts";
import { kvExactlyOnceSink } from "./kv-exactly-once.ts";

export interface KvSinkOptions<T> {
  readonly bucket: string;
  readonly key: string | ((value: T) => string | number);
  readonly keyEncoding?: KeyEncoding;
  readonly maxInFlight?: number;
  readonly maxBufferedKeys?: number;
  readonly lingerMs?: number;
  /** "at-least-once" (default): put at once. "exactly-once": visible when the checkpoint commits. */
  readonly delivery?: "at-least-once" | "exactly-once";
}

const Options = t.intersection([
  t.type({ bucket: t.refinement(t.string, (s) => /^[-\w]+$/.test(s), "BucketName"), key: t.union([t.string, t.Function]) }),
  t.partial({
    keyEncoding: t.keyof({ encode: null, reject: null }),
    maxInFlight: PositiveInt,
    maxBufferedKeys: PositiveInt,
    lingerMs: NonNegativeInt,
    delivery: t.keyof({ "exactly-once": null, "at-least-once": null }),
  }),
]);

export function kvSink<T>(options: KvSinkOptions<T>): SinkDef<T> {
  decodeOptions(Options, options, "Sinks.kv", "Sinks.kv options");
  const { bucket } = options;
  const encoding = options.keyEncoding ?? KeyEncoding.Encode;
  const keyOption = options.key;
  // A key the function makes from a record's data that KV cannot take is that record's dead letter (as a
  // subject is for the other sinks): failing the job would only fail it again on the same record.
  const keyOf: (value: T, reject: (reason: string) => void) => string | undefined = typeof keyOption === "function"
    ? (v, reject) => {
      let k: string | number;
      try { k = keyOption(v); } catch (e) {
        throw new WeirError(ErrorCode.UserFunction, `Sinks.kv (bucket "${bucket}"): the key function threw: ${messageOf(e)}`, { cause: e });
      }
      try {
        return kvKeyFor(bucket, k, encoding);
      } catch (e) {
        reject(messageOf(e));
        return undefined;
      }
    }
    : ((fixed) => () => fixed)(kvKeyFor(bucket, keyOption, encoding));
  if (options.delivery === "exactly-once") return kvExactlyOnceSink(bucket, keyOf, options);
  const maxInFlight = options.maxInFlight ?? 256;
  const maxBufferedKeys = options.maxBufferedKeys ?? 1000;
  const lingerMs = options.lingerMs ?? 50;
  const maxKeyBytes = MAX_SUBJECT_BYTES - `$KV.${bucket}.`.length;

  return {
    kind: "kv",
    settings: options,
    async createWriter(ctx): Promise<SinkWriter<T>> {
      let kv: KV;
      try {
        kv = await new Kvm(ctx.nc).create(bucket, { history: 1, replicas: ctx.names.replicas });
      } catch (e) {
        throw new WeirError(ErrorCode.Sink, `Sinks.kv: cannot open or create bucket "${bucket}": ${messageOf(e)}`, { cause: e });
      }
      const window = new InflightWindow(maxInFlight);
      let buffered = new Map<string, SinkPayload>();
      let timer: NodeJS.Timeout | undefined;
      let sending: Promise<void> = Promise.resolve();

      const sendBatch = async (batch: Map<string, SinkPayload>) => {
        for (const [key, payload] of batch) {
          const wait = window.add(kv.put(key, payload), (e) =>
            new WeirError(ErrorCode.Sink, `Sinks.kv: put of key ${preview(key, 200)} to bucket "${bucket}" failed: ${messageOf(e)}`, { cause: e }));
          if (wait) await wait;
        }
      };
      /** Hands the buffered map to the window; batches go out one after another, in order. */
      const send = (): Promise<void> => {
        clearTimeout(timer);
        timer = undefined;
        if (buffered.size > 0) {
          const batch = buffered;
          buffered = new Map();
          sending = sending.then(() => sendBatch(batch));
        }
        return sending;
      };

      return {
        write(value) {
          window.throwIfFailed();
          const payload = sinkPayload(ctx, value);
          if (payload === undefined) return;
          const key = keyOf(value, (reason) => rejectRecord(ctx, value, reason));
          if (key === undefined) return;
          // A key is part of the subject `$KV.<bucket>.<key>`, held to the sinks' subject limit.
          if (key.length > maxKeyBytes / 3 && Buffer.byteLength(key) > maxKeyBytes) {
            rejectRecord(ctx, value, `Sinks.kv (bucket "${bucket}"): a key of ${Buffer.byteLength(key)} bytes is longer than weir writes (${maxKeyBytes}; the server closes a connection whose protocol line passes 4096)`);
            return;
          }
          buffered.set(key, payload);
          if (buffered.size >= maxBufferedKeys) return send();
          timer ??= setTimeout(() => { void send(); }, lingerMs);
        },
        async flush() {
          await send();
          await window.drain();
        },
        async close() {
          clearTimeout(timer);
          await send().catch(() => {});
          await window.drain().catch(() => {});
        },
      };
    },
  };
}
