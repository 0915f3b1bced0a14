// nc.flush() that always settles. A flush asked for while the connection drains can send its PING after
// drain's own; drain closes the connection at drain's PONG, and close() drops the later pong without
// settling it, so that flush waits for ever (tests/nats-flush: about 1 in 100 tries). A job stopping while
// its environment closes did exactly that and never ended (tests/start-cancel).

import type { NatsConnection } from "@nats-io/transport-node";

/** Resolves when the server has seen everything published so far; rejects once the connection is closed. */
export function flushConnection(nc: NatsConnection): Promise<void> {
  const flushed = nc.flush();
  if (!nc.isDraining()) return flushed;
  // After close, nc.flush() rejects at once with the client's own closed-connection error.
  return Promise.race([flushed, nc.closed().then(() => nc.flush())]);
}
