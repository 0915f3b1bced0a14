// The fence on a worker's KV state writes. A worker frozen (SIGSTOP, a VM paused) while its subtasks
// wrote state to KV, and deployed without meanwhile, would otherwise go on writing when thawed, before it
// hears that it was fenced: its checkpoint's values over the newer ones of the worker that took its key
// groups. So a worker's KV writes go out only while it can prove that it still runs in the current epoch,
// by its own monotonic clock, with nothing it could have missed:
// - the leader: while its lease holds (LeaderLease.isLeader counts from when the renewal was sent);
// - a follower: within CONFIRMED_SHARE of the leader's membership timeout after it *sent* a ping that the
//   leader answered "member of your epoch". The leader counts that answer as the follower's heartbeat
//   (LeaderSide.confirmsMember), so it deploys no epoch without it sooner than the timeout after
//   answering; a reply read late (the ping sent before a freeze) is dated by its sending, so it proves
//   nothing about the time after the freeze. A disconnect voids the proof (a connection lost is judged
//   sooner: "no responders").
// Writes wait while the fence is closed (state/backends/jetstream-kv/pipe.ts), and a closed fence asks the
// leader at once. What is left: writes sent before a freeze that the server applies only after the thaw
// (`npm run bench fence`, docs/known-gaps.md); they are at most the writes in flight.

import type { NatsConnection } from "@nats-io/transport-node";
import type { JobNames } from "../../runtime/core/names.ts";
import { messageOf } from "../../runtime/core/errors.ts";
import { decodeMessage } from "../job/control-protocol.ts";
import { MembershipAnswer, MembershipPing, encodeMessage } from "./protocol.ts";

/** The part of the leader's membership timeout that a confirmation is good for (slack for the two clocks' rates). */
const CONFIRMED_SHARE = 0.9;
/** A closed fence asks at most this often (held writes look again every 50 ms; a fenced worker's leader answers "other" each time). */
const MIN_ASK_GAP_MS = 100;

export interface StateWriteFenceOptions {
  readonly nc: NatsConnection;
  readonly names: JobNames;
  readonly workerId: string;
  /** The leader's membership timeout (leader-side.ts memberTimeoutMs). */
  readonly memberTimeoutMs: number;
  /** A ping's deadline. */
  readonly pingTimeoutMs: number;
  /** This worker leads and its lease holds. */
  readonly leads: () => boolean;
  /** The leader this worker follows, if known. */
  readonly leader: () => string | undefined;
  /** The epoch this worker runs (leading: the one it deployed last). */
  readonly epoch: () => number;
  /** The leader answered a ping (alive, whatever its answer). */
  readonly onLeaderSeen: () => void;
  /** The leader's connection is gone (its ping found no responders). */
  readonly onLeaderGone: (leader: string) => void;
}

export class StateWriteFence {
  private confirmedAt = Number.NEGATIVE_INFINITY;
  private asking = false;
  private askedAt = Number.NEGATIVE_INFINITY;

  constructor(private readonly o: StateWriteFenceOptions) {}

  /** Whether this worker's KV state writes may go out now; when not, the leader is asked again. */
  mayWrite(): boolean {
    if (this.o.leads()) return true;
    if (performance.now() - this.confirmedAt < CONFIRMED_SHARE * this.o.memberTimeoutMs) return true;
    this.ask();
    return false;
  }

  /**
   * The gate of a state backend opened in `epoch`: shut for good once this worker runs another epoch (a
   * backend of an epoch left behind, still closing, must not write when the worker is confirmed in a new one).
   */
  forEpoch(epoch: number): () => boolean {
    return () => this.o.epoch() === epoch && this.mayWrite();
  }

  /** The connection was lost: what the leader confirmed before is no proof any more. */
  void(): void {
    this.confirmedAt = Number.NEGATIVE_INFINITY;
  }

  /**
   * Pings the leader with this worker's id and epoch (the follower's regular look at its leader too): a
   * "member" answer confirms, as of the ping's sending, that the leader runs this worker in that epoch.
   */
  ask(): void {
    const leader = this.o.leader();
    const sentAt = performance.now();
    if (this.asking || sentAt - this.askedAt < MIN_ASK_GAP_MS || leader === undefined || leader === this.o.workerId) return;
    this.asking = true;
    this.askedAt = sentAt;
    const epoch = this.o.epoch();
    const ping: MembershipPing = { worker: this.o.workerId, epoch };
    this.o.nc.request(this.o.names.workerPing(leader), encodeMessage(ping), { timeout: this.o.pingTimeoutMs }).then(
      (reply) => {
        this.o.onLeaderSeen();
        if (reply.string() === MembershipAnswer.Member && epoch === this.o.epoch()) this.confirmedAt = Math.max(this.confirmedAt, sentAt);
      },
      (e: unknown) => { if (/no responders/i.test(messageOf(e))) this.o.onLeaderGone(leader); },
    ).finally(() => { this.asking = false; });
  }
}

/** The leader's answer to a follower's ping body `{ worker, epoch }` (undefined: not such a ping). */
export function answerMembershipPing(body: Uint8Array, confirms: ((worker: string, epoch: number) => boolean) | undefined): string | undefined {
  let ping: MembershipPing;
  try {
    ping = decodeMessage(MembershipPing, body, "a membership ping");
  } catch {
    return undefined;
  }
  return confirms?.(ping.worker, ping.epoch) ? MembershipAnswer.Member : MembershipAnswer.Other;
}
