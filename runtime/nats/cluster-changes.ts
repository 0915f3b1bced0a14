// When the NATS connection last reported a change of the cluster's servers: a server shut down or lost
// (the client's status "update": an INFO with other connect URLs) or entering lame-duck mode. For a while
// after, JetStream elects new leaders for what that server led, and what was placed on it (an ordered
// consumer) goes silent: the JetStream source's watchdog looks sooner then.

import type { NatsConnection, Status } from "@nats-io/transport-node";

/** How long after a change answers are awaited for a shorter time. */
export const CLUSTER_CHANGE_WINDOW_MS = 20_000;

export interface ClusterChanges {
  /** Wall-clock ms of the last change (-Infinity: none seen). */
  readonly lastAt: number;
  /** Whether a change was seen within CLUSTER_CHANGE_WINDOW_MS. */
  recent(): boolean;
  stop(): void;
}

export function watchClusterChanges(nc: NatsConnection): ClusterChanges {
  const status = nc.status() as AsyncIterable<Status> & { stop?: () => void };
  const seen = {
    lastAt: Number.NEGATIVE_INFINITY,
    recent: () => Date.now() - seen.lastAt < CLUSTER_CHANGE_WINDOW_MS,
    stop: () => status.stop?.(),
  };
  void (async () => {
    for await (const s of status) if (s.type === "update" || s.type === "ldm") seen.lastAt = Date.now();
  })().catch(() => {});
  return seen;
}
