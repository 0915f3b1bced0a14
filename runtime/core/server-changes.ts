// Calls back whenever the NATS connection reports a change of the cluster's servers: a server shut down
// or lost (the client's status "update": an INFO with other connect URLs) or entering lame-duck mode.
// JetStream then elects new leaders for what that server led, and what was placed on it goes silent.

import type { NatsConnection, Status } from "@nats-io/transport-node";

/** Stops the watch (the connection's status iterator). */
export type StopWatching = () => void;

export function onServerChanges(nc: NatsConnection, changed: () => void): StopWatching {
  const status = nc.status() as AsyncIterable<Status> & { stop?: () => void };
  void (async () => {
    for await (const s of status) if (s.type === "update" || s.type === "ldm") changed();
  })().catch(() => {});
  return () => status.stop?.();
}
