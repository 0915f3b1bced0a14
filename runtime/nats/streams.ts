// Creating a JetStream stream that several subtasks may create at the same moment.

import type { JetStreamManager, StreamConfig, StreamInfo } from "@nats-io/jetstream";
import { reconcileStream } from "../../state/backends/stream-replicas.ts";
import { retryJetStream, waitForStreamLeader } from "../../state/backends/jetstream-retry.ts";

/**
 * Creates the stream unless it exists; losing the race to another subtask is fine. An existing stream
 * with another `num_replicas` than asked is updated to it (one line on stderr says so). Calls are retried
 * through leader elections, and a replicated stream is returned once it has a leader. Rejects with the
 * creation error when the stream is neither there nor creatable (callers wrap it in their own error).
 */
export async function ensureStream(jsm: JetStreamManager, config: Partial<StreamConfig> & { name: string }): Promise<void> {
  const want = { replicas: config.num_replicas ?? 1, ...(config.allow_direct === undefined ? {} : { allowDirect: config.allow_direct }) };
  const info = await lookUpStream(jsm, config.name);
  if (info) {
    await reconcileStream(jsm, info, want);
  } else {
    try {
      await retryJetStream(() => jsm.streams.add(config));
    } catch (e) {
      await jsm.streams.info(config.name).catch(() => { throw e; });
    }
  }
  if (want.replicas > 1) await waitForStreamLeader(() => jsm.streams.info(config.name));
}

/** The stream's info, undefined when it does not exist (retried through leader elections). */
export function lookUpStream(jsm: JetStreamManager, name: string): Promise<StreamInfo | undefined> {
  return retryJetStream(() => jsm.streams.info(name).catch((e: unknown) => {
    if (/stream not found/i.test((e as Error).message)) return undefined;
    throw e;
  }));
}
