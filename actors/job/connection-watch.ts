// The job's view of its NATS connection, from the connection's status events: whether it is up, and
// whether a failure now is put down to an outage (during it, or within a grace period after it or after
// the cluster's servers changed, while JetStream recovers its streams and requests still time out).

import type { NatsConnection, Status } from "@nats-io/transport-node";
import type { Clock } from "../../runtime/core/clock.ts";
import { ErrorCode, WeirError } from "../../runtime/core/errors.ts";
import type { JobState } from "./machine.ts";
import { waitForJetStreamApi } from "../../runtime/nats/jetstream-ready.ts";
import { closedConnectionFailure } from "../../runtime/nats/connect.ts";
import { moreTelling, watchPermissionDenials } from "../../runtime/nats/denials.ts";

/** A failure this soon after the connection came back is put down to the outage. */
export const RECOVERY_GRACE_MS = 20_000;
const RECONNECT_POLL_MS = 100;

export function sleep(clock: Clock, ms: number): Promise<void> {
  return new Promise((resolve) => { clock.setTimeout(resolve, ms); });
}

export interface ConnectionEvents {
  onDisconnect(server: string): void;
  onReconnect(server: string): void;
  onClusterChange?(): void;
  /** The server denied a publish or subscription (the user's permissions): no restart mends it. */
  onPermissionDenied?(e: WeirError): void;
  /**
   * The client gave up the connection (the server refused the credentials on a reconnect): nothing rides
   * through that. `e` says why, in one line.
   */
  onClosedForGood?(e: unknown): void;
}

export class ConnectionWatch {
  /** While the connection is down: when it went (the watch's clock), for `weir status` and /metrics. */
  private downSince: number | undefined;
  private recoveringUntil = 0;
  private readonly status: AsyncIterable<Status> & { stop?: () => void };
  /** The last time the server refused the credentials (the client may close with another error of its own after it). */
  private lastRefusal: Error | undefined;

  constructor(private readonly nc: NatsConnection, private readonly clock: Clock, events: ConnectionEvents) {
    if (events.onPermissionDenied) watchPermissionDenials(nc, events.onPermissionDenied);
    const onClosed = events.onClosedForGood;
    if (onClosed) void nc.closed().then(async (why) => { if (why) onClosed(await closedConnectionFailure(nc, why, this.lastRefusal)); });
    const status = nc.status() as AsyncIterable<Status> & { stop?: () => void };
    this.status = status;
    void (async () => {
      for await (const s of status) {
        if (s.type === "error") this.lastRefusal = moreTelling(this.lastRefusal, s.error);
        if (s.type === "disconnect") {
          this.downSince ??= this.clock.now();
          events.onDisconnect(s.server);
        } else if (s.type === "reconnect") {
          this.downSince = undefined;
          this.recoveringUntil = this.clock.now() + RECOVERY_GRACE_MS;
          events.onReconnect(s.server);
        } else if (s.type === "update") {
          // The server announced a change of the cluster's servers (an INFO with new connect URLs; the
          // client lists a lost one as deleted only if it learned it that way, not if it was configured).
          // A server lost means JetStream elects new leaders for what it led, and requests time out or
          // find no responder meanwhile, though this connection stayed up: failures then are the outage's.
          this.recoveringUntil = this.clock.now() + RECOVERY_GRACE_MS;
          events.onClusterChange?.();
        }
      }
    })().catch(() => {});
  }

  get disconnectedSince(): number | undefined { return this.downSince; }

  private get connected(): boolean { return this.downSince === undefined; }

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

  /**
   * Before a restart: connected again and, after a server was lost, JetStream's API answering (a meta
   * leader elected), so the deployment does not run into request timeouts during the election.
   */
  async readyForRestart(keepWaiting: () => boolean, log: (line: string) => void): Promise<void> {
    await this.connectedAgain(keepWaiting, () => log("waiting for the NATS connection to restart the job"));
    if (!this.inOutage()) return;
    const waited = await waitForJetStreamApi(this.nc, keepWaiting);
    if (waited > 0) log(`restart: JetStream's API answered again after ${waited} ms (a meta leader elected)`);
  }

  /** `e`, or, once the connection closed for good, why it closed (credentials refused on a reconnect). */
  async explainFailure(e: unknown): Promise<unknown> {
    return this.nc.isClosed() ? closedConnectionFailure(this.nc, e, this.lastRefusal) : e;
  }

  stop(): void { this.status.stop?.(); }
}

/**
 * What a disconnect means for a job in `state`: a failure to restart from, or only a line to log. Frames
 * and credits between subtasks may be lost (the client drops what it had not sent, the server keeps no
 * core-NATS message across a restart; the last checkpoint never includes a lost frame, see input-gate.ts).
 * A running job goes on: once the connection is back every producer probes its
 * channels (frames.ts ProbeFrame), and a consumer that misses a frame fails, which restarts the job from
 * its last checkpoint; nothing lost, no restart. Any other deployed state restarts at once.
 */
export function disconnectFailure(server: string, state: JobState, checkpointing: boolean): WeirError | string {
  if (state !== "running" && state !== "deploying" && state !== "restarting" && state !== "stopping") return `NATS connection to ${server} lost (job ${state})`;
  if (!checkpointing) return `NATS connection to ${server} lost: records in flight between subtasks may be lost (no checkpoints: at-most-once)`;
  if (state === "running") return `NATS connection to ${server} lost: the job goes on; once it is back, every channel between subtasks is probed and a lost frame restarts the job from the last checkpoint`;
  return new WeirError(ErrorCode.Transport, `NATS connection to ${server} lost: records in flight between subtasks may be lost; restarting from the last checkpoint once it is back`);
}
