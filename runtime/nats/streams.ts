// Creating a JetStream stream that several subtasks may create at the same moment.

import type { JetStreamManager, StreamConfig } from "@nats-io/jetstream";
import { reconcileStream } from "../../state/backends/stream-replicas.ts";

/**
 * Creates the stream unless it exists; losing the race to another subtask is fine. An existing stream
 * with another `num_replicas` than asked is updated to it (one line on stderr says so). Rejects with the
 * creation error when the stream is neither there nor creatable (callers wrap it in their own error).
 */
export async function ensureStream(jsm: JetStreamManager, config: Partial<StreamConfig> & { name: string }): Promise<void> {
  const want = { replicas: config.num_replicas ?? 1, ...(config.allow_direct === undefined ? {} : { allowDirect: config.allow_direct }) };
  let info;
  try {
    info = await jsm.streams.info(config.name);
  } catch {
    // not there (yet)
  }
  if (info) {
    await reconcileStream(jsm, info, want);
    return;
  }
  try {
    await jsm.streams.add(config);
  } catch (e) {
    await jsm.streams.info(config.name).catch(() => { throw e; });
  }
}
