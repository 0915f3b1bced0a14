// The `Sources` namespace of the public API.
import { arraySource } from "./array.ts";
import { generatorSource } from "./generator.ts";
import { jetstreamSource } from "./jetstream.ts";
import { natsSource } from "./nats.ts";
import { fileSource } from "./file.ts";
import { hybridSource } from "./hybrid.ts";

export const Sources = {
  array: arraySource,
  generator: generatorSource,
  jetstream: jetstreamSource,
  nats: natsSource,
  file: fileSource,
  hybrid: hybridSource,
} as const;
export type { GeneratorOptions } from "./generator.ts";
export type { JetStreamSourceOptions, JetStreamSourceState } from "./jetstream.ts";
export type { StartAt } from "./jetstream-lane.ts";
export type { Codec, PayloadFormat } from "./decode.ts";
export type { NatsSourceOptions } from "./nats.ts";
export type { NatsMessage } from "./message-metadata.ts";
export type { FileSourceOptions, FileSourceState, FileFormat } from "./file.ts";
export type { HybridSourceState } from "./hybrid.ts";
