// Which server a command talks to: --nats / the job's `nats` option, else WEIR_NATS_URL, else the
// embedded default (started or reused). Connection failures become one readable line.

import { connect, type NatsConnection } from "@nats-io/transport-node";
import { ErrorCode, WeirError } from "../errors.ts";
import { ensureEmbeddedServer } from "./embedded.ts";

export async function resolveNatsUrl(explicit?: string): Promise<string> {
  const url = explicit ?? process.env.WEIR_NATS_URL;
  if (url) return url;
  return (await ensureEmbeddedServer()).url;
}

export async function connectNats(url: string, name = "weir"): Promise<NatsConnection> {
  try {
    return await connect({ servers: url, name, maxReconnectAttempts: -1, reconnectTimeWait: 500, timeout: 5000 });
  } catch (e) {
    const reason = (e as Error).message || String(e);
    throw new WeirError(ErrorCode.NatsUnreachable, `cannot reach NATS at ${url}: ${reason}`, { cause: e });
  }
}
