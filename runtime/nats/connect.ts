// Which server a command talks to: --nats / the job's `nats` option, else WEIR_NATS_URL, else the
// embedded default (started or reused). Connection failures become one readable line.

import { connect, type NatsConnection } from "@nats-io/transport-node";
import { ErrorCode, WeirError } from "../core/errors.ts";
import { ensureEmbeddedServer } from "./embedded.ts";

export async function resolveNatsUrl(explicit?: string): Promise<string> {
  const url = explicit ?? process.env.WEIR_NATS_URL;
  if (url) return url;
  return (await ensureEmbeddedServer()).url;
}

export async function connectNats(url: string, name = "weir"): Promise<NatsConnection> {
  try {
    // Reconnect forever (a daemon outlives a server restart), and ping every 5 s so a server that vanished
    // without closing the socket is noticed within ~15 s rather than the client's default 2 minutes × 2.
    // "url1,url2,...": every server of a cluster, so the first connect survives one of them being down
    // (once connected the servers also gossip the cluster's URLs).
    return await connect({ servers: url.split(",").map((u) => u.trim()).filter((u) => u !== ""), name, maxReconnectAttempts: -1, reconnectTimeWait: 500, timeout: 5000, pingInterval: 5000, maxPingOut: 2 });
  } catch (e) {
    const reason = (e as Error).message || String(e);
    throw new WeirError(ErrorCode.NatsUnreachable, `cannot reach NATS at ${url}: ${reason}`, { cause: e });
  }
}
