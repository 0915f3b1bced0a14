// Opens the JetStream KV backend: makes sure the job's state bucket exists (history 1: measured,
// history 2 makes every write ~28x slower on 2.9.10; direct gets on, for the pipelined reads).

import { Kvm } from "@nats-io/kv";
import type { NatsConnection } from "@nats-io/transport-node";
import type { StateBackendConfig } from "../../config.ts";
import { StateAccessError } from "../../errors.ts";
import type { KeyGroupRange } from "../../key-groups.ts";
import { JetStreamKvStateBackend } from "./backend.ts";
import { KvPipe } from "./pipe.ts";
import type { JobNames } from "../../../runtime/core/names.ts";
import { ChangelogStream } from "../changelog/stream.ts";

export interface OpenJetStreamKvOptions {
  readonly nc: NatsConnection;
  readonly names: JobNames;
  readonly keyGroupRange: KeyGroupRange;
  readonly config: StateBackendConfig;
  /** The vertex (chain) whose keyed state this is: names its changelog subjects. */
  readonly vertexUid: string;
  readonly onDirtyBudgetExceeded?: () => void;
}

/** Creates the bucket if missing (idempotent; several subtasks may race here); returns how many messages it holds. */
export async function ensureStateBucket(nc: NatsConnection, bucket: string): Promise<number> {
  try {
    const kv = await new Kvm(nc).create(bucket, { history: 1, allow_direct: true });
    const status = await kv.status();
    if (status.history !== 1) {
      throw new StateAccessError(`KV bucket ${bucket} keeps ${status.history} revisions per key; weir needs history 1 (writes are ~28x slower otherwise)`);
    }
    if (status.streamInfo.config.allow_direct !== true) {
      throw new StateAccessError(`KV bucket ${bucket} does not allow direct gets; recreate it (weir creates it with allow_direct)`);
    }
    return status.streamInfo.state.messages;
  } catch (e) {
    if (e instanceof StateAccessError) throw e;
    throw new StateAccessError(`cannot open KV bucket ${bucket}: ${(e as Error).message}`, { cause: e });
  }
}

export async function openJetStreamKvBackend(options: OpenJetStreamKvOptions): Promise<JetStreamKvStateBackend> {
  const { nc, names } = options;
  const messages = await ensureStateBucket(nc, names.stateBucket);
  let changelog: { stream: ChangelogStream; owner: string; forOwner: (owner: string) => ChangelogStream } | undefined;
  if (options.config.durability === "checkpoint") {
    const stream = new ChangelogStream(nc, names, options.vertexUid);
    await stream.ensure();
    changelog = { stream, owner: options.vertexUid, forOwner: (owner) => (owner === options.vertexUid ? stream : new ChangelogStream(nc, names, owner)) };
  }
  const pipe = new KvPipe(options.nc, names.stateBucket, {
    getWindow: options.config.getConcurrency,
    writeWindow: options.config.putConcurrency,
    timeoutMs: options.config.requestTimeoutMs,
  });
  return new JetStreamKvStateBackend({
    pipe,
    keyGroupRange: options.keyGroupRange,
    config: options.config,
    maxPayload: options.nc.info?.max_payload ?? 1024 * 1024,
    ...(changelog ? { changelog } : {}),
    ...(options.onDirtyBudgetExceeded ? { onDirtyBudgetExceeded: options.onDirtyBudgetExceeded } : {}),
    // Only the subtask owning a key group writes its keys (one run at a time; a restart after a failure
    // restores a checkpoint first, which turns this off): an empty bucket means a key it never wrote is absent.
    bucketWasEmpty: messages === 0,
  });
}
