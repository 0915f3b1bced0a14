// Creating a JetStream stream that several subtasks may create at the same moment.

import type { JetStreamManager, StreamConfig } from "@nats-io/jetstream";

/**
 * Creates the stream unless it exists; losing the race to another subtask is fine. Rejects with the
 * creation error when the stream is neither there nor creatable (callers wrap it in their own error).
 */
export async function ensureStream(jsm: JetStreamManager, config: Partial<StreamConfig> & { name: string }): Promise<void> {
  try {
    await jsm.streams.info(config.name);
    return;
  } catch {
    // not there (yet)
  }
  try {
    await jsm.streams.add(config);
  } catch (e) {
    await jsm.streams.info(config.name).catch(() => { throw e; });
  }
}
