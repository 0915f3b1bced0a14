// Opens the JetStream KV backend: makes sure the job's state bucket exists (history 1: measured,
// history 2 makes every write ~28x slower on 2.9.10; direct gets on, for the pipelined reads, on one
// server). With replicas a follower answers direct gets before it has caught up, so a read after a
// restore could miss an acknowledged write: a replicated bucket turns direct gets off and every read
// goes to the stream leader, which has every acknowledged write.

import { Kvm } from "@nats-io/kv";
import { jetstreamManager } from "@nats-io/jetstream";
import { reconcileStream } from "../stream-replicas.ts";
import { JETSTREAM_RETRY_BUDGET_MS, isTransientJetStreamError, isTransientOrJustCreated, retryJetStream, waitForStreamLeader } from "../jetstream-retry.ts";
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
  /** Whether writes may go out now (KvPipeOptions.mayWrite). */
  readonly mayWrite?: () => boolean;
}

/** Creates the bucket if missing (idempotent; several subtasks may race here); returns how many messages it holds. */
export async function ensureStateBucket(nc: NatsConnection, bucket: string, replicas = 1): Promise<number> {
  const allowDirect = replicas === 1;
  try {
    const justCreated = replicas > 1 ? isTransientOrJustCreated : isTransientJetStreamError;
    const kv = await retryJetStream(() => new Kvm(nc).create(bucket, { history: 1, allow_direct: allowDirect, replicas }), JETSTREAM_RETRY_BUDGET_MS, justCreated);
    let status = await retryJetStream(() => kv.status(), JETSTREAM_RETRY_BUDGET_MS, justCreated);
    if (await reconcileStream(await jetstreamManager(nc, { checkAPI: false }), status.streamInfo, { replicas, allowDirect })) status = await kv.status();
    if (status.history !== 1) {
      throw new StateAccessError(`KV bucket ${bucket} keeps ${status.history} revisions per key; weir needs history 1 (writes are ~28x slower otherwise)`);
    }
    if ((status.streamInfo.config.allow_direct === true) !== allowDirect) {
      throw new StateAccessError(`KV bucket ${bucket} ${allowDirect ? "does not allow" : "allows"} direct gets; weir needs them ${allowDirect ? "on with 1 replica" : "off with replicas"}`);
    }
    if (replicas > 1) await waitForStreamLeader(() => kv.status().then((s) => s.streamInfo));
    return status.streamInfo.state.messages;
  } catch (e) {
    if (e instanceof StateAccessError) throw e;
    throw new StateAccessError(`cannot open KV bucket ${bucket}: ${(e as Error).message}`, { cause: e });
  }
}

export async function openJetStreamKvBackend(options: OpenJetStreamKvOptions): Promise<JetStreamKvStateBackend> {
  const { nc, names } = options;
  const messages = await ensureStateBucket(nc, names.stateBucket, names.replicas);
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
    leaderReads: names.replicas > 1,
    ...(options.mayWrite ? { mayWrite: options.mayWrite } : {}),
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
