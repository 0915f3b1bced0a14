// The one entry point the runtime uses to get a subtask's keyed state backend.

import type { NatsConnection } from "@nats-io/transport-node";
import { ErrorCode, WeirError } from "../runtime/errors.ts";
import type { JobNames } from "../runtime/names.ts";
import { resolveStateBackendConfig } from "./config.ts";
import type { KeyedStateBackend, StateBackendKind } from "./contracts.ts";
import { StateBackendKind as Kind } from "./contracts.ts";
import type { KeyGroupRange } from "./key-groups.ts";
import { HeapKeyedStateBackend } from "./backends/heap.ts";
import { openJetStreamKvBackend } from "./backends/jetstream-kv/open.ts";

export interface CreateKeyedStateBackendOptions {
  readonly kind: StateBackendKind;
  /** Needed by the jetstream-kv backend. */
  readonly nc?: NatsConnection;
  readonly names: JobNames;
  readonly keyGroupRange: KeyGroupRange;
  readonly maxParallelism: number;
  /** Partial StateBackendConfig (validated; defaults fill the rest). */
  readonly config?: unknown;
}

export async function createKeyedStateBackend(options: CreateKeyedStateBackendOptions): Promise<KeyedStateBackend> {
  const { kind, keyGroupRange, maxParallelism } = options;
  if (!Number.isInteger(maxParallelism) || maxParallelism < 1) {
    throw new WeirError(ErrorCode.InvalidOption, `maxParallelism must be a positive integer, got ${maxParallelism}`);
  }
  if (keyGroupRange.start < 0 || keyGroupRange.end >= maxParallelism || keyGroupRange.size < 1) {
    throw new WeirError(ErrorCode.InvalidOption, `key-group range ${keyGroupRange.toString()} is not within [0, ${maxParallelism - 1}]`);
  }
  const config = resolveStateBackendConfig(options.config);
  switch (kind) {
    case Kind.Heap:
      return new HeapKeyedStateBackend(keyGroupRange);
    case Kind.JetStreamKv:
      if (!options.nc) throw new WeirError(ErrorCode.InvalidOption, "the jetstream-kv state backend needs a NATS connection");
      return openJetStreamKvBackend({ nc: options.nc, bucket: options.names.stateBucket, keyGroupRange, config });
    default:
      throw new WeirError(ErrorCode.InvalidOption, `unknown state backend "${String(kind)}"; use "jetstream-kv" or "heap"`);
  }
}
