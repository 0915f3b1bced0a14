// Sinks.kv({ ..., delivery: "exactly-once" }): a KV bucket is the stream `KV_<bucket>` on `$KV.<bucket>.>`,
// and a put is a publish to `$KV.<bucket>.<key>`; so this is Sinks.jetstream's two-phase commit into that
// stream (jetstream-exactly-once.ts): a key's new value becomes visible only when the checkpoint covering
// it commits. A service reading the bucket never sees a value the job later takes back: without it, a
// restart from a checkpoint writes the replayed records' values again, so a count read as 10 may read 7
// for a moment after a crash (at-least-once, the default, puts at once).

import { Kvm } from "@nats-io/kv";
import type { SinkDef, SinkWriter } from "../contracts/connectors.ts";
import { ErrorCode, WeirError, messageOf } from "../core/errors.ts";
import { jetstreamSink } from "./jetstream.ts";
import { rejectRecord } from "./payload.ts";

/** `settings`: the kv sink's options as given (SinkDef.settings). */
export function kvExactlyOnceSink<T>(bucket: string, keyOf: (value: T, reject: (reason: string) => void) => string | undefined, settings: unknown): SinkDef<T> {
  // The key of the record being written: write() resolves it (dead-lettering one KV cannot take) and the
  // subject function, called synchronously inside the inner write, reads it.
  let current = "";
  const inner = jetstreamSink<T>({ stream: `KV_${bucket}`, subject: () => `$KV.${bucket}.${current}`, delivery: "exactly-once" });
  return {
    kind: "kv",
    settings,
    async createWriter(ctx): Promise<SinkWriter<T>> {
      if (!ctx.checkpointing) throw new WeirError(ErrorCode.Sink, `Sinks.kv (bucket "${bucket}"): delivery "exactly-once" needs checkpoints: set checkpointIntervalMs`);
      try {
        await new Kvm(ctx.nc).create(bucket, { history: 1, replicas: ctx.names.replicas });
      } catch (e) {
        throw new WeirError(ErrorCode.Sink, `Sinks.kv: cannot open or create bucket "${bucket}": ${messageOf(e)}`, { cause: e });
      }
      const writer = await inner.createWriter(ctx);
      return {
        ...writer,
        write(value, timestamp) {
          const key = keyOf(value, (reason) => rejectRecord(ctx, value, reason));
          if (key === undefined) return;
          current = key;
          return writer.write(value, timestamp);
        },
        flush: () => writer.flush(),
        close: () => writer.close(),
        ...(writer.snapshotState ? { snapshotState: (id: number) => writer.snapshotState!(id) } : {}),
        ...(writer.notifyCheckpointComplete ? { notifyCheckpointComplete: (id: number) => writer.notifyCheckpointComplete!(id) } : {}),
        ...(writer.metrics ? { metrics: () => writer.metrics!() } : {}),
      };
    },
  };
}
