// Riding out JetStream leader elections. While a stream's (or the meta) leader is being elected — a server
// of a cluster lost or restarted, a replicated stream just created — JetStream API calls and publishes
// time out or find no responder (nats.js reports "jetstream is not enabled") for a few seconds (~4-9 s
// measured on a three-node loopback cluster). Such a call is retried until a budget runs out, then fails
// as before (the job restarts from its last checkpoint). Only calls that are safe to repeat go through
// here: publishes with a message id (the stream's duplicate window drops a retried one that did land),
// idempotent puts and reads.

export const JETSTREAM_RETRY_BUDGET_MS = 30_000;

/** Whether `e` is what a JetStream call reports while a leader is being elected or a server is away. */
export function isTransientJetStreamError(e: unknown): boolean {
  const text = `${(e as { name?: string })?.name ?? ""} ${(e as Error)?.message ?? String(e)} ${(e as { code?: unknown })?.code ?? ""}`;
  return /timeout|timed out|no responders|503|not enabled|temporarily unavailable|no suitable peers|insufficient resources|leader|disconnect|connection closed|reconnect|RequestError/i.test(text)
    // A permission the server denied (whose subject may hold "leader") stays denied.
    && !/wrong last sequence|stream not found|10071|permissions violation/i.test(text);
}

/** Calls `fn` until it succeeds, fails with a non-transient error, or `budgetMs` passed (then its last error). */
export async function retryJetStream<T>(fn: () => Promise<T>, budgetMs = JETSTREAM_RETRY_BUDGET_MS, transient = isTransientJetStreamError): Promise<T> {
  const deadline = Date.now() + budgetMs;
  for (let delay = 100; ; delay = Math.min(delay * 2, 1000)) {
    try {
      return await fn();
    } catch (e) {
      if (!transient(e) || Date.now() + delay > deadline) throw e;
      await new Promise((r) => setTimeout(r, delay));
    }
  }
}

/**
 * Also "stream not found": a replicated stream just created (by this call or a subtask racing it) is not
 * found for a moment on a cluster (seen as a failed first deployment on a three-node cluster).
 */
export function isTransientOrJustCreated(e: unknown): boolean {
  return isTransientJetStreamError(e) || /stream not found|10059/i.test(`${(e as Error)?.message ?? String(e)} ${(e as { code?: unknown })?.code ?? ""}`);
}

/**
 * Waits until the stream has a leader (a replicated stream just created or moved has none for a moment:
 * publishes to it would find no responder). Gives up quietly after `budgetMs`: the calls that follow retry.
 */
export async function waitForStreamLeader(info: () => Promise<{ cluster?: { leader?: string } }>, budgetMs = 10_000): Promise<void> {
  const deadline = Date.now() + budgetMs;
  while (Date.now() < deadline) {
    try {
      const i = await info();
      if (!i.cluster || i.cluster.leader) return;
    } catch { /* electing */ }
    await new Promise((r) => setTimeout(r, 100));
  }
}
