// Waiting for JetStream's meta leader after a server of a cluster was lost. While one is elected (4-9 s
// on nats-server 2.9.10: its raft election timeout), JetStream API requests get no answer and each one
// costs its whole timeout (5 s): a job redeploying meanwhile would create its buckets, streams and
// consumers only after the next timeout past the election. `$JS.API.INFO` is answered by the meta leader
// only, so polling it with a short timeout tells within about a second when the API answers again.

import type { NatsConnection } from "@nats-io/transport-node";
import { ErrorCode, WeirError } from "../core/errors.ts";

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

/**
 * When `e` says JetStream is not there (the server runs without it, or the user's account has none): one
 * line naming the server and what to enable, instead of the client's "JetStreamNotEnabled: jetstream is
 * not enabled". Undefined for anything else (a cluster electing its meta leader also reports "not enabled",
 * but its servers' INFO says JetStream is on).
 */
export function jetStreamMissing(nc: NatsConnection, e: unknown): WeirError | undefined {
  const text = `${(e as Error)?.name ?? ""}: ${(e as Error)?.message ?? String(e)}`;
  if (!/not ?enabled/i.test(text)) return undefined;
  // A server without a configured name is named by its id (a public key): only the address then.
  const named = nc.info?.server_name && nc.info.server_name !== nc.info.server_id;
  const server = `${named ? `${nc.info!.server_name} at ` : ""}${nc.getServer()}`;
  if (/not enabled for account/i.test(text)) {
    return new WeirError(ErrorCode.InvalidOption, `JetStream is not enabled for this NATS user's account on ${server}: weir keeps each job's log, state and checkpoints in JetStream; give the account \`jetstream: enabled\` in the server's config`, { cause: e });
  }
  if (nc.info?.jetstream === true) return undefined;
  return new WeirError(ErrorCode.InvalidOption, `the NATS server ${server} runs without JetStream: weir keeps each job's log, state and checkpoints in JetStream; start nats-server with -js (or \`jetstream: enabled\` in its config)`, { cause: e });
}
