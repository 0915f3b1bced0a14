// The job's view of its NATS connection, from the connection's status events: whether it is up, and
// whether a failure now is put down to an outage (during it, or within a grace period after it while
// JetStream recovers its streams and requests still time out).

import type { NatsConnection, Status } from "@nats-io/transport-node";
import type { Clock } from "../../runtime/core/clock.ts";

/** A failure this soon after the connection came back is put down to the outage. */
export const RECOVERY_GRACE_MS = 20_000;
const RECONNECT_POLL_MS = 100;

export function sleep(clock: Clock, ms: number): Promise<void> {
  return new Promise((resolve) => { clock.setTimeout(resolve, ms); });
}

export interface ConnectionEvents {
  onDisconnect(server: string): void;
  onReconnect(server: string): void;
}

export class ConnectionWatch {
  private connected = true;
  private recoveringUntil = 0;
  private readonly status: AsyncIterable<Status> & { stop?: () => void };

  constructor(private readonly nc: NatsConnection, private readonly clock: Clock, events: ConnectionEvents) {
    const status = nc.status() as AsyncIterable<Status> & { stop?: () => void };
    this.status = status;
    void (async () => {
      for await (const s of status) {
        if (s.type === "disconnect") {
          this.connected = false;
          events.onDisconnect(s.server);
        } else if (s.type === "reconnect") {
          this.connected = true;
          this.recoveringUntil = this.clock.now() + RECOVERY_GRACE_MS;
          events.onReconnect(s.server);
        }
      }
    })().catch(() => {});
  }

  inOutage(): boolean {
    return !this.connected || this.clock.now() < this.recoveringUntil;
  }

  /** Resolves once connected, or once `keepWaiting()` turns false or the connection closed for good. */
  async connectedAgain(keepWaiting: () => boolean, onWait: () => void): Promise<void> {
    let waited = false;
    while (!this.connected && keepWaiting() && !this.nc.isClosed()) {
      if (!waited) onWait();
      waited = true;
      await sleep(this.clock, RECONNECT_POLL_MS);
    }
  }

  stop(): void { this.status.stop?.(); }
}
