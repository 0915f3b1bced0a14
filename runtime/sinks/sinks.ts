// The `Sinks` namespace of the public API.
import { printSink } from "./print.ts";
import { jetstreamSink } from "./jetstream.ts";
import { natsSink } from "./nats.ts";
import { kvSink } from "./kv.ts";
import { fileSink } from "./file.ts";

export const Sinks = {
  print: printSink,
  jetstream: jetstreamSink,
  nats: natsSink,
  kv: kvSink,
  file: fileSink,
} as const;
export type { JetStreamSinkOptions, JetStreamSinkState, JetStreamSinkWriter } from "./jetstream.ts";
export type { NatsSinkOptions } from "./nats.ts";
export type { KvSinkOptions } from "./kv.ts";
export type { FileSinkOptions } from "./file.ts";
export { decodeKvKey, encodeKvKey } from "./kv-keys.ts";
