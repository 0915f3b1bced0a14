// Whether the cluster's servers changed lately (runtime/core/server-changes.ts): for a while after,
// JetStream elects new leaders, and an ordered consumer placed on the lost server goes silent, so the
// JetStream source's watchdog looks sooner.

import type { NatsConnection } from "@nats-io/transport-node";
import { onServerChanges } from "../core/server-changes.ts";

/** How long after a change answers are awaited for a shorter time. */
export const CLUSTER_CHANGE_WINDOW_MS = 20_000;

export interface ClusterChanges {
  /** Whether a change was seen within CLUSTER_CHANGE_WINDOW_MS. */
  recent(): boolean;
  stop(): void;
}

export function watchClusterChanges(nc: NatsConnection): ClusterChanges {
  let lastAt = Number.NEGATIVE_INFINITY;
  const stop = onServerChanges(nc, () => { lastAt = Date.now(); });
  return { recent: () => Date.now() - lastAt < CLUSTER_CHANGE_WINDOW_MS, stop };
}
