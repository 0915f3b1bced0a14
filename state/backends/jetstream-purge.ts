// Removing one subject's messages from a stream without the purge API on a replicated stream.
// nats-server 2.9.10 replays a subject-filtered purge as a full one when a replica recovers its log after
// a restart: `Compact(lastSeq + 1)` of the stream as it was at the purge, every subject's messages, not
// the purged one's (applyStreamEntries, purgeStreamOp; nats-io/nats-server#4196, fixed upstream by #4197
// in May 2023). That replica then lacks acknowledged messages (a checkpoint bucket's `latest`, staged
// output, changelog deltas) and may become the leader: seen here as a restart reading no checkpoint and
// as staged output missing after a server of a three-node cluster was SIGKILLed and restarted. A message
// delete replays as itself, so on a replicated stream each message is deleted by its sequence; an R1
// stream has no replicated log and keeps the single purge call.

import type { JetStreamManager, MsgRequest, StoredMsg } from "@nats-io/jetstream";
import { retryJetStream } from "./jetstream-retry.ts";

const notFound = (e: unknown) => /no message found|not found/i.test((e as Error)?.message ?? "");

/**
 * Removes the messages of `filter` (wildcards allowed) with a sequence below `beforeSeq` (all of them when
 * undefined). Repeatable, each call retried through leader elections. Returns how many were deleted
 * one by one (0 for a purge).
 */
export async function purgeSubject(jsm: JetStreamManager, stream: string, filter: string, beforeSeq: number | undefined, replicas: number): Promise<number> {
  if (replicas <= 1) {
    await retryJetStream(() => jsm.streams.purge(stream, { filter, ...(beforeSeq !== undefined ? { seq: beforeSeq } : {}) }));
    return 0;
  }
  let deleted = 0;
  for (let from = 1; ;) {
    const m = await retryJetStream(() => nextMessageOn(jsm, stream, filter, from).catch((e: unknown) => {
      if (notFound(e)) return null;
      throw e;
    }));
    if (m === null || (beforeSeq !== undefined && m.seq >= beforeSeq)) return deleted;
    await deleteMessageIfPresent(jsm, stream, m.seq);
    deleted++;
    from = m.seq + 1;
  }
}

/** The first message at or after `seq` on `filter` (wildcards allowed), or null: one request, no retry. */
export function nextMessageOn(jsm: JetStreamManager, stream: string, filter: string, seq: number): Promise<StoredMsg | null> {
  // The server's message-get takes `next_by_subj`; the client types it for direct gets only.
  return jsm.streams.getMessage(stream, { next_by_subj: filter, seq } as unknown as MsgRequest);
}

/** Deletes message `seq` (no erase), retried through leader elections; one already gone is fine. */
export async function deleteMessageIfPresent(jsm: JetStreamManager, stream: string, seq: number): Promise<void> {
  await retryJetStream(() => jsm.streams.deleteMessage(stream, seq, false).catch((e: unknown) => {
    if (!notFound(e)) throw e;
    return true;
  }));
}
