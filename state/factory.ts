// The one entry point the runtime uses to get a subtask's keyed state backend.

import type { NatsConnection } from "@nats-io/transport-node";
import { jetstreamManager } from "@nats-io/jetstream";
import { ErrorCode, WeirError } from "../runtime/core/errors.ts";
import { assertToken, type JobNames } from "../runtime/core/names.ts";
import { ChangelogStream } from "./backends/changelog/stream.ts";
import { purgeSubject } from "./backends/jetstream-purge.ts";
import { operatorKeys } from "./backends/jetstream-kv/keys.ts";
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
  /** Partial StateBackendConfig (validated; defaults fill the rest). Set `durability: "checkpoint"` when the job checkpoints. */
  readonly config?: unknown;
  /**
   * The vertex (operator chain) this subtask runs: names its changelog subjects, so it must be the same
   * uid in every run and at every parallelism. Default "keyed".
   */
  readonly vertexUid?: string;
  /** With durability "checkpoint": called (once per checkpoint interval) when the dirty budget is exceeded. */
  readonly onDirtyBudgetExceeded?: () => void;
  /** Whether KV writes may go out now (a worker's fence): while not, they wait. None: always (jetstream-kv only). */
  readonly mayWrite?: () => boolean;
  /** The completed checkpoints the job keeps (checkpointsRetained): the heap backend keeps each restorable. Default 1. */
  readonly retainedCheckpoints?: number;
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
  const vertexUid = assertToken("vertex uid", options.vertexUid ?? "keyed");
  const nc = options.nc;
  switch (kind) {
    case Kind.Heap: {
      if (!nc) return new HeapKeyedStateBackend(keyGroupRange, undefined, config.maxValueBytes);
      const stream = new ChangelogStream(nc, options.names, vertexUid);
      return new HeapKeyedStateBackend(keyGroupRange, {
        stream, owner: vertexUid, forOwner: (owner) => (owner === vertexUid ? stream : new ChangelogStream(nc, options.names, owner)),
        retain: options.retainedCheckpoints ?? 1,
      }, config.maxValueBytes);
    }
    case Kind.JetStreamKv:
      if (!nc) throw new WeirError(ErrorCode.InvalidOption, "the jetstream-kv state backend needs a NATS connection");
      return openJetStreamKvBackend({
        nc, names: options.names, keyGroupRange, config, vertexUid,
        ...(options.onDirtyBudgetExceeded ? { onDirtyBudgetExceeded: options.onDirtyBudgetExceeded } : {}),
        ...(options.mayWrite ? { mayWrite: options.mayWrite } : {}),
      });
    default:
      throw new WeirError(ErrorCode.InvalidOption, `unknown state backend "${String(kind)}"; use "jetstream-kv" or "heap"`);
  }
}

/**
 * Deletes every piece of a job's keyed state: the KV bucket and the changelog stream (a run that starts
 * without restoring, e.g. `--restore none`, must not read a previous run's state).
 */
export async function destroyKeyedState(nc: NatsConnection, names: JobNames): Promise<void> {
  const jsm = await jetstreamManager(nc);
  for (const stream of [`KV_${names.stateBucket}`, names.changelogStream]) {
    await jsm.streams.delete(stream).catch((e: unknown) => {
      if (!/not found/i.test((e as Error).message)) throw e;
    });
  }
}

/**
 * Erases operator `operatorUid`'s keyed state from the job's KV bucket: its state was dropped at a restore
 * (allowNonRestoredState), and KV, unlike a checkpoint, would hand it back if an operator of that uid
 * came back later. Returns whether there was a bucket to erase from.
 */
export async function eraseOperatorState(nc: NatsConnection, names: JobNames, operatorUid: string): Promise<boolean> {
  const jsm = await jetstreamManager(nc);
  const stream = `KV_${names.stateBucket}`;
  try {
    await purgeSubject(jsm, stream, `$KV.${names.stateBucket}.${operatorKeys(operatorUid)}`, undefined, names.replicas);
    return true;
  } catch (e) {
    if (/not found/i.test((e as Error).message)) return false;
    throw e;
  }
}
