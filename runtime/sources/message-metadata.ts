// `metadata: true` on Sources.nats and Sources.jetstream: each record is the message, not only its
// decoded payload, so a job can key by the subject a wildcard matched, read headers (a trace id, a tenant),
// or answer a request (`Sinks.nats({ subject: (m) => m.reply! })`). As Flink's KafkaRecordDeserializationSchema
// sees the whole ConsumerRecord. Without the option nothing of this is built (no per-record cost).
//
// The record is JSON data, so it crosses keyBy and checkpoints as it is: headers as `{ name: [values] }`
// (a header may repeat; names as the publisher wrote them), the payload as `data` decoded by the source's
// `format` and `codec`. `format: "bytes"` with metadata is refused: a Uint8Array inside a record would
// travel as an object of indices.

import type { MsgHdrs } from "@nats-io/transport-node";
import { ErrorCode, WeirError } from "../core/errors.ts";

/** A message with its payload decoded: what a source with `metadata: true` gives. */
export interface NatsMessage<T> {
  /** The subject the message was published to (the one a wildcard matched). */
  readonly subject: string;
  /** The payload, decoded by `format` and `codec`. */
  readonly data: T;
  /** Headers, each name with its values in order; `{}` when the message had none. */
  readonly headers: Readonly<Record<string, readonly string[]>>;
  /** Core NATS: the reply subject of a request (absent for a plain publish). */
  readonly reply?: string;
  /** JetStream: the message's stream sequence. */
  readonly sequence?: number;
  /** JetStream: when the stream stored the message, epoch ms. */
  readonly time?: number;
}

export function assertMetadataFormat(what: string, metadata: boolean | undefined, format: string): void {
  if (metadata === true && format === "bytes") {
    throw new WeirError(ErrorCode.InvalidOption, `${what}: metadata: true takes format "json" or "text" (a Uint8Array inside a record would travel between subtasks as an object of indices); use metadata with format "text", or format "bytes" without metadata`);
  }
}

export function headersOf(h: MsgHdrs | undefined): Readonly<Record<string, readonly string[]>> {
  const out: Record<string, string[]> = {};
  if (h === undefined) return out;
  for (const [name, values] of h) out[name] = [...values];
  return out;
}
