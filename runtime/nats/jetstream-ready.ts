// Waiting for JetStream's meta leader after a server of a cluster was lost. While one is elected (4-9 s
// on nats-server 2.9.10: its raft election timeout), JetStream API requests get no answer and each one
// costs its whole timeout (5 s): a job redeploying meanwhile would create its buckets, streams and
// consumers only after the next timeout past the election. `$JS.API.INFO` is answered by the meta leader
// only, so polling it with a short timeout tells within about a second when the API answers again.

import type { NatsConnection } from "@nats-io/transport-node";

const POLL_TIMEOUT_MS = 1000;
const POLL_PAUSE_MS = 100;

/**
 * Resolves once `$JS.API.INFO` is answered without an error (or with "no responders": JetStream is not
 * there at all, nothing to wait for), after `budgetMs`, or once `keepWaiting()` turns false; returns how
 * long it waited when it had to, else 0.
 */
export async function waitForJetStreamApi(nc: NatsConnection, keepWaiting: () => boolean, budgetMs = 30_000): Promise<number> {
  const started = Date.now();
  for (let first = true; keepWaiting() && !nc.isClosed() && Date.now() - started < budgetMs; first = false) {
    try {
      const m = await nc.request("$JS.API.INFO", undefined, { timeout: POLL_TIMEOUT_MS });
      const r = m.json<{ error?: unknown }>();
      if (!r.error) return first ? 0 : Date.now() - started;
    } catch (e) {
      if (/no responders|503/i.test((e as Error).message ?? "")) return 0;
    }
    await new Promise((r) => setTimeout(r, POLL_PAUSE_MS));
  }
  return Date.now() - started;
}
