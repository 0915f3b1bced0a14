// Leader election over the job log. A worker takes the lease by appending a lease record that expects
// the log to end where it last read it, so of several contenders exactly one succeeds, and a deposed
// leader's next append fails. Who may try: when the log is empty, its last record released the lease,
// or nothing was appended for `leaseMs` as measured by this worker's own monotonic clock from the moment
// it saw the last change (no clock is compared across machines). The leader renews by appending; it
// fences itself: it counts as leader only until the send time of its last successful append + leaseMs −
// a margin, which is before any other worker (which saw that append after it was sent) may take over.
// Past that deadline it does not act, but it is deposed only once another worker appended: a renewal
// expecting its own last record still wins when nobody did (a slow server must not end a lone leader).
// Silence a worker could not observe is no sign of the leader's death: while this worker's connection was
// down, or the log could not be read (a restarted server's JetStream recovering), the leader could not
// renew either, and a renewal it sent as the server went down waits for its answer until the log's
// request timeout. So from when this worker observes the log again, the lease runs that timeout and a whole
// term, and for that long a leader "gone" (no responders: not re-subscribed yet) proves nothing. Otherwise
// a follower whose clock ran through the outage took the lease as the log came back (tests/workers-
// disconnect, twice in full `npm test` runs: once at once, once a lease after its reconnect, while the
// leader's renewal still waited for an answer that was lost with the server).

import * as t from "io-ts";
import { ErrorCode, WeirError, messageOf } from "../core/errors.ts";
import { decodeOptions, FunctionOption, PositiveInt, NonNegativeInt } from "../core/validation.ts";
import type { JobLog, JobLogRecord } from "./job-log.ts";

export interface LeaseOptions {
  leaseMs: number;
  /** Default leaseMs / 4. */
  renewEveryMs?: number;
  /** How long before the lease ends the leader stops counting itself leader; default leaseMs / 5. */
  marginMs?: number;
  /** Monotonic clock in ms; default performance.now. */
  now?: () => number;
}
const LeaseOptionsCodec = t.intersection([
  t.type({ leaseMs: PositiveInt }),
  t.partial({ renewEveryMs: PositiveInt, marginMs: NonNegativeInt, now: FunctionOption }),
]);

export interface LeaseEvents {
  onElected(epoch: number): void;
  onDeposed(reason: string): void;
  onLeaderSeen?(leader: string, epoch: number): void;
  /** Every record another worker appended, as it is seen (a follower learns of deployments that leave it out). */
  onRecord?(record: JobLogRecord, seq: number): void;
  /** Asked before taking a free lease (false: do not; e.g. the job this worker joined has ended). */
  mayTakeOver?(): Promise<boolean>;
}

interface Held { seq: number; sentAt: number }

/**
 * How a worker won the lease: whose it was (the last record's writer) and why it was free: `released` (a
 * leader leaving), `gone` (its connection vanished: leaderGone), `expired` (no append for the lease), `free`
 * (an empty log, or the job's end). A new leader taking over a live run records it (takeover-history.ts).
 */
export interface LeaseWon { readonly from: string | undefined; readonly why: "released" | "gone" | "expired" | "free" }

export class LeaderLease {
  private readonly leaseMs: number;
  private readonly renewEveryMs: number;
  private readonly marginMs: number;
  private readonly now: () => number;
  private held: Held | undefined;
  /** Send time of the earliest append whose outcome is unknown (a timeout): it may have been stored. */
  private unconfirmedSince: number | undefined;
  private pendingTakeover: { sentAt: number; epoch: number } | undefined;
  private lastSeenSeq = -1;
  private lastChangeAt = 0;
  private seenEpoch = 0;
  private seenLeader: string | undefined;
  private reportedEpoch = -1;
  private timer: ReturnType<typeof setTimeout> | undefined;
  private watcher: { stop(): void } | undefined;
  private serial: Promise<unknown> = Promise.resolve();
  private stopped = true;
  private renewalsPaused = false;
  /** The leader leaderGone() was told of, until a record of its own shows it alive. */
  private goneLeader: string | undefined;
  private winning: LeaseWon | undefined;
  /** When this worker last began observing the log again (its connection back, or a read after failed ones). */
  private observingSince = Number.NEGATIVE_INFINITY;
  /** The last read of the log failed. */
  private logUnreadable = false;
  private reconnects: { stop(): void } | undefined;
  /** How this worker last won the lease. */
  won: LeaseWon | undefined;

  constructor(private readonly log: JobLog, readonly workerId: string, options: LeaseOptions, private readonly events: LeaseEvents) {
    const o = decodeOptions(LeaseOptionsCodec, options, "LeaderLease options") as LeaseOptions;
    this.leaseMs = o.leaseMs;
    this.renewEveryMs = o.renewEveryMs ?? Math.max(1, Math.floor(o.leaseMs / 4));
    this.marginMs = o.marginMs ?? Math.floor(o.leaseMs / 5);
    if (this.renewEveryMs >= this.leaseMs - this.marginMs) {
      throw new WeirError(ErrorCode.InvalidOption, `LeaderLease options: renewEveryMs (${this.renewEveryMs}) must be below leaseMs − marginMs (${this.leaseMs - this.marginMs})`);
    }
    this.now = o.now ?? (() => performance.now());
  }

  /** Observe the log; take the lease when it is free. */
  start(): void {
    if (!this.stopped) return;
    this.stopped = false;
    this.lastChangeAt = this.now();
    this.watcher = this.log.watch((record, seq) => this.noteRecord(record, seq));
    this.reconnects = this.log.watchReconnects(() => this.observingAgain());
    this.schedule(0);
  }

  /** Stops observing; a leader appends a released lease (unless `release: false`) so another takes over at once. */
  async stop(options: { release?: boolean } = {}): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    clearTimeout(this.timer);
    this.watcher?.stop();
    this.reconnects?.stop();
    if (options.release !== false && this.isLeader) {
      await this.enqueue(() => this.fencedAppend({ kind: "lease", leader: this.workerId, epoch: this.seenEpoch, released: true }, false)).catch(() => {});
    } else {
      await this.serial.catch(() => {});
    }
    this.held = undefined;
  }

  /** False once the self-fence deadline passed, even before onDeposed. */
  get isLeader(): boolean {
    return this.held !== undefined && this.now() < this.held.sentAt + this.leaseMs - this.marginMs;
  }
  /** The epoch of the last record seen (the leader's current epoch). */
  get epoch(): number { return this.seenEpoch; }
  get leader(): string | undefined { return this.seenLeader; }
  /** The epoch a new deployment appended by this leader must carry. */
  nextEpoch(): number { return this.seenEpoch + 1; }

  /**
   * As leader: appends `record` fenced (serialized with renewals); it counts as a renewal. False (and
   * onDeposed) when another worker wrote first or the lease ran out; an unknown outcome (a timeout) is
   * resolved by reading the log before answering.
   */
  async appendAsLeader(record: JobLogRecord): Promise<boolean> {
    if (record.leader !== this.workerId) throw new WeirError(ErrorCode.InvalidOption, `appendAsLeader: record.leader is "${record.leader}", this worker is "${this.workerId}"`);
    if (record.epoch < this.seenEpoch) throw new WeirError(ErrorCode.InvalidOption, `appendAsLeader: record.epoch ${record.epoch} is below the current epoch ${this.seenEpoch}`);
    if (this.stopped || !this.held) return false;
    return this.enqueue(() => this.fencedAppend(record, true));
  }

  /**
   * The leader's connection is gone (a request to it found no responders): its lease need not run out
   * before another worker tries; the append is fenced all the same, so a leader still alive loses nothing
   * but its lease.
   */
  leaderGone(leader: string): void {
    if (this.stopped || this.held || this.seenLeader !== leader || this.now() - this.observingSince < this.log.requestTimeoutMs + this.leaseMs) return;
    this.goneLeader = leader;
    this.lastChangeAt = this.now() - this.leaseMs;
    clearTimeout(this.timer);
    this.schedule(0);
  }

  /** Test hook: simulate a frozen process, which neither renews nor observes (appendAsLeader still tries). */
  pauseRenewalsForTest(): void {
    this.renewalsPaused = true;
    clearTimeout(this.timer);
    this.watcher?.stop();
  }

  private enqueue<T>(f: () => Promise<T>): Promise<T> {
    const p = this.serial.then(f, f);
    this.serial = p.catch(() => {});
    return p;
  }

  private schedule(ms: number): void {
    if (this.stopped || this.renewalsPaused) return;
    // One timer at a time: a tick brought forward (a released lease seen) replaces the waiting one.
    clearTimeout(this.timer);
    this.timer = setTimeout(() => {
      void this.enqueue(() => this.tick()).catch(() => {}).finally(() => this.schedule(this.renewEveryMs));
    }, ms);
  }

  private async tick(): Promise<void> {
    if (this.stopped || this.renewalsPaused) return;
    if (this.held) {
      // Past its deadline (a slow server, a stalled event loop) the leader does not act, but it is not
      // deposed until another worker appended: a renewal expecting its own last record still wins if no one did.
      if (!this.isLeader || this.now() - this.held.sentAt >= this.renewEveryMs * 0.9) {
        await this.fencedAppend({ kind: "lease", leader: this.workerId, epoch: this.seenEpoch }, true);
      }
      return;
    }
    // Its watch delivers every record as it is stored: a worker that saw a live leader's record within the
    // lease knows the lease is not free without reading the log (two requests a tick fewer). A record the
    // watch missed (a disconnect) is found by the read once the lease seems to have run out.
    if (this.pendingTakeover === undefined && this.lastSeenSeq > 0 && this.seenLeader !== undefined && this.now() - this.lastChangeAt < this.leaseMs) return;
    let tail: { seq: number; record?: JobLogRecord };
    try {
      tail = await this.log.tail();
    } catch {
      this.logUnreadable = true;
      return; // the log is unreachable: nobody can take the lease; try again on the next tick
    }
    if (this.logUnreadable) {
      this.logUnreadable = false;
      this.observingAgain();
    }
    if (tail.record) this.noteRecord(tail.record, tail.seq);
    const pending = this.pendingTakeover;
    this.pendingTakeover = undefined;
    if (pending && tail.record?.kind === "lease" && tail.record.leader === this.workerId && tail.record.epoch === pending.epoch && !tail.record.released) {
      return this.elected(tail.seq, pending.sentAt, pending.epoch); // the takeover whose answer was lost did land
    }
    const free = tail.seq === 0 || (tail.record?.kind === "lease" && tail.record.released === true) || tail.record?.kind === "end" || this.now() - this.lastChangeAt >= this.leaseMs;
    if (!free || (this.events.mayTakeOver && !(await this.events.mayTakeOver()))) return;
    const epoch = Math.max(this.seenEpoch, tail.record?.epoch ?? 0) + 1;
    const last = tail.record;
    const why = tail.seq === 0 || last?.kind === "end" ? "free" : last?.kind === "lease" && last.released ? "released" : last?.leader === this.goneLeader ? "gone" : "expired";
    this.winning = { from: last?.leader, why };
    const sentAt = this.now();
    let result: number | "conflict";
    try {
      result = await this.log.append({ kind: "lease", leader: this.workerId, epoch }, tail.seq);
    } catch {
      this.pendingTakeover = { sentAt, epoch };
      return;
    }
    if (result === "conflict") return;
    this.elected(result, sentAt, epoch);
  }

  /** This worker observes the log again after a time it could not (see the top): the lease runs the log's request timeout and a whole term from now. */
  private observingAgain(): void {
    const now = this.now();
    this.observingSince = now;
    this.goneLeader = undefined;
    if (!this.held) this.lastChangeAt = Math.max(this.lastChangeAt, now + this.log.requestTimeoutMs);
  }

  private elected(seq: number, sentAt: number, epoch: number): void {
    this.held = { seq, sentAt };
    this.unconfirmedSince = undefined;
    this.won = this.winning;
    this.seenEpoch = epoch;
    this.noteLeader(this.workerId, epoch);
    if (seq > this.lastSeenSeq) { this.lastSeenSeq = seq; this.lastChangeAt = this.now(); }
    this.events.onElected(epoch);
  }

  /** Appends expecting the leader's own last record; resolves an unknown outcome by reading the log. */
  private async fencedAppend(record: JobLogRecord, deposeOnLoss: boolean): Promise<boolean> {
    for (let attempt = 0; ; attempt++) {
      if (!this.held || this.log.closed) return false;
      // Unanswered for two leases (the server is away): give up this append; the lease is not lost by it
      // (only another worker's append takes it), and the next renewal tries again.
      if (this.now() - this.held.sentAt > 2 * this.leaseMs && attempt > 0) return false;
      // At most a quarter of a renewal apart: a log back after an outage sees the leader's renewal first.
      if (attempt > 0) await new Promise((r) => setTimeout(r, Math.min(50 * attempt, Math.max(1, Math.floor(this.renewEveryMs / 4)))));
      const sentAt = this.now();
      this.unconfirmedSince ??= sentAt;
      let result: number | "conflict" | undefined;
      try {
        result = await this.log.append(record, this.held.seq);
      } catch {
        result = undefined; // unknown: it may have been stored
      }
      if (typeof result === "number") {
        this.confirm(result, record);
        return true;
      }
      let tail: { seq: number; record?: JobLogRecord };
      try {
        tail = await this.log.tail();
      } catch {
        continue;
      }
      if (tail.seq === this.held.seq) continue; // not stored: try again
      if (tail.record?.leader === this.workerId && tail.record.epoch >= this.seenEpoch) {
        // Only this worker writes with its id, and only on top of its own last record: an earlier attempt landed.
        const same = JSON.stringify(tail.record) === JSON.stringify(record);
        this.confirm(tail.seq, tail.record);
        if (same) return true;
        continue;
      }
      if (deposeOnLoss) this.depose(`worker "${tail.record?.leader ?? "?"}" appended to the job log at epoch ${tail.record?.epoch ?? "?"}`);
      else this.held = undefined;
      return false;
    }
  }

  private confirm(seq: number, record: JobLogRecord): void {
    this.held = { seq, sentAt: this.unconfirmedSince ?? this.now() };
    this.unconfirmedSince = undefined;
    if (record.epoch > this.seenEpoch) this.seenEpoch = record.epoch;
    if (seq > this.lastSeenSeq) { this.lastSeenSeq = seq; this.lastChangeAt = this.now(); }
  }

  private depose(reason: string): void {
    if (!this.held) return;
    this.held = undefined;
    this.unconfirmedSince = undefined;
    this.lastChangeAt = this.now();
    try {
      this.events.onDeposed(reason);
    } catch (e) {
      process.stderr.write(`LeaderLease onDeposed failed: ${messageOf(e)}\n`);
    }
  }

  private noteRecord(record: JobLogRecord, seq: number): void {
    if (seq <= this.lastSeenSeq) return;
    this.lastSeenSeq = seq;
    this.lastChangeAt = this.now();
    if (record.epoch >= this.seenEpoch) this.seenEpoch = record.epoch;
    if (record.leader === this.goneLeader) this.goneLeader = undefined;
    if (record.leader !== this.workerId) this.events.onRecord?.(record, seq);
    if (this.held && record.leader !== this.workerId) {
      this.depose(`worker "${record.leader}" appended to the job log at epoch ${record.epoch}`);
    }
    this.noteLeader((record.kind === "lease" && record.released) || record.kind === "end" ? undefined : record.leader, record.epoch);
    // A released lease is free now: try at once rather than at the next renewal tick (up to leaseMs / 4 away).
    if (record.kind === "lease" && record.released && !this.held) this.schedule(0);
  }

  private noteLeader(leader: string | undefined, epoch: number): void {
    const changed = leader !== this.seenLeader || epoch !== this.reportedEpoch;
    this.seenLeader = leader;
    if (changed && leader !== undefined) {
      this.reportedEpoch = epoch;
      this.events.onLeaderSeen?.(leader, epoch);
    }
  }
}
