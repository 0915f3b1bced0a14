// Opens the JetStream KV backend: makes sure the job's state bucket exists (history 1: FACTS.md shows
// history 2 makes every write ~28x slower on 2.9.10; direct gets on, for the pipelined reads).

import { Kvm } from "@nats-io/kv";
import type { NatsConnection } from "@nats-io/transport-node";
import type { StateBackendConfig } from "../../config.ts";
import { StateAccessError } from "../../errors.ts";
import type { KeyGroupRange } from "../../key-groups.ts";
import { JetStreamKvStateBackend } from "./backend.ts";
import { KvPipe } from "./pipe.ts";

export interface OpenJetStreamKvOptions {
  readonly nc: NatsConnection;
  readonly bucket: string;
  readonly keyGroupRange: KeyGroupRange;
  readonly config: StateBackendConfig;
}

/** Creates the bucket if missing (idempotent; several subtasks may race here) and returns the backend. */
export async function ensureStateBucket(nc: NatsConnection, bucket: string): Promise<void> {
  try {
    const kv = await new Kvm(nc).create(bucket, { history: 1, allow_direct: true });
    const status = await kv.status();
    if (status.history !== 1) {
      throw new StateAccessError(`KV bucket ${bucket} keeps ${status.history} revisions per key; weir needs history 1 (writes are ~28x slower otherwise)`);
    }
    if (status.streamInfo.config.allow_direct !== true) {
      throw new StateAccessError(`KV bucket ${bucket} does not allow direct gets; recreate it (weir creates it with allow_direct)`);
    }
  } catch (e) {
    if (e instanceof StateAccessError) throw e;
    throw new StateAccessError(`cannot open KV bucket ${bucket}: ${(e as Error).message}`, { cause: e });
  }
}

export async function openJetStreamKvBackend(options: OpenJetStreamKvOptions): Promise<JetStreamKvStateBackend> {
  await ensureStateBucket(options.nc, options.bucket);
  const pipe = new KvPipe(options.nc, options.bucket, {
    getWindow: options.config.getConcurrency,
    writeWindow: options.config.putConcurrency,
    timeoutMs: options.config.requestTimeoutMs,
  });
  return new JetStreamKvStateBackend({
    pipe,
    keyGroupRange: options.keyGroupRange,
    config: options.config,
    maxPayload: options.nc.info?.max_payload ?? 1024 * 1024,
  });
}
