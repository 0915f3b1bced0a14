// Sinks.nats({ subject }): one core NATS message per record (JSON payload), subject a string or
// `(value) => string`. At-most-once: nobody subscribed, nobody gets it. `flush()` is a round trip to the
// server, so everything written before it has reached the server. Core publishes never block, so every
// `FLUSH_EVERY` records `write` returns such a round trip: the client's outbound buffer stays bounded.

import * as t from "io-ts";
import type { SinkDef, SinkWriter } from "../contracts/connectors.ts";
import { rejectRecord, sinkPayload } from "./payload.ts";
import { decodeOptions } from "../core/validation.ts";
import { checkSubjectOption, subjectResolver, type SubjectOption } from "./subject.ts";
import { flushConnection } from "../nats/flush.ts";

export interface NatsSinkOptions<T> {
  readonly subject: SubjectOption<T>;
}

const Options = t.type({ subject: t.union([t.string, t.Function]) });
const FLUSH_EVERY = 8192;

export function natsSink<T>(options: NatsSinkOptions<T>): SinkDef<T> {
  decodeOptions(Options, options, "Sinks.nats", "Sinks.nats options");
  checkSubjectOption("Sinks.nats", options.subject);
  return {
    kind: "nats",
    settings: options,
    async createWriter(ctx): Promise<SinkWriter<T>> {
      let sinceFlush = 0;
      const resolveSubject = subjectResolver("Sinks.nats", options.subject, (value, reason) => rejectRecord(ctx, value, reason));
      return {
        write(value) {
          const payload = sinkPayload(ctx, value);
          const subject = payload === undefined ? undefined : resolveSubject(value);
          if (subject !== undefined) ctx.nc.publish(subject, payload!);
          if (++sinceFlush >= FLUSH_EVERY) {
            sinceFlush = 0;
            return flushConnection(ctx.nc);
          }
        },
        async flush() {
          sinceFlush = 0;
          await flushConnection(ctx.nc);
        },
        async close() {
          await flushConnection(ctx.nc).catch(() => {});
        },
      };
    },
  };
}
