// Which workers of a distributed job are alive, over core NATS (a message per heartbeat interval, never
// per record, packed as the worker protocol's messages are: packed-json.ts). Every worker publishes
// heartbeats and answers pings on its inbox; a view (the leader's) tracks them. A crashed worker's subscriptions vanish with its connection, so a ping to it gets "no
// responders" at once: that is a crash, found within about two probe intervals (a member is pinged only
// once its heartbeat is late, so an idle job's control plane is its heartbeats, not pings as well). A hung
// worker (stopped, or in a long GC pause) still holds its connection: only missing heartbeats reveal it,
// after a timeout stretched by the event-loop stalls it reported recently, so a worker that is merely slow
// is not dead.
//
// A heartbeat is mostly packed against its worker's last full one (~13 bytes instead of ~100): an idle
// job's control plane is mostly heartbeats, and `npm run bench workers` holds it under 2% of the data's
// bytes. A view that lacks the reference (started since, or missed it) asks every worker for a full one.

import * as t from "io-ts";
import { isLeft } from "fp-ts/lib/Either.js";
import { hostname } from "node:os";
import { monitorEventLoopDelay, type IntervalHistogram } from "node:perf_hooks";
import type { NatsConnection, Subscription } from "@nats-io/transport-node";
import { messageOf } from "../core/errors.ts";
import type { JobNames } from "../core/names.ts";
import { decodeOptions, FunctionOption, NonNegativeInt, PositiveInt } from "../core/validation.ts";
import { describeErrors } from "../core/validation.ts";
import { JobIdentityCodec, type JobIdentity } from "./job-identity.ts";
import { flushConnection } from "../nats/flush.ts";
import { isPackedAgainst, MissingReferenceError, PackedReferences, packJsonAgainst, unpackJsonText } from "./packed-json.ts";

/** `identity`: the job graph and options this worker runs (job-identity.ts); the leader places only on its own. */
export interface WorkerInfo { id: string; host: string; pid: number; startedAt: string; lagMs: number; epoch: number; subtasks: string[]; leaving?: boolean; identity?: JobIdentity }
export interface MemberView extends WorkerInfo { heartbeatAgeMs: number }
export type LeaveReason = "left" | "crashed" | "missed-heartbeats";

const WorkerInfoCodec = t.intersection([
  t.type({ id: t.string, host: t.string, pid: t.number, startedAt: t.string, lagMs: t.number, epoch: t.number, subtasks: t.array(t.string) }),
  t.partial({ leaving: t.boolean, identity: JobIdentityCodec }),
]);

/** The host name to put in WorkerInfo. */
export function workerHost(): string { return hostname(); }

/**
 * A worker sends every 10th heartbeat in full (the rest against the last full one): a view that missed
 * one (core NATS, no redelivery) learns the worker within 10 beats even if its request for one is lost.
 */
const FULL_HEARTBEAT_EVERY = 10;
/** Full heartbeats (one per worker, and its previous ones until pushed out) a view keeps as references. */
const HEARTBEAT_REFERENCES = 256;

export class WorkerHeartbeat {
  private readonly intervalMs: number;
  private timer: ReturnType<typeof setInterval> | undefined;
  private ping: Subscription | undefined;
  private histogram: IntervalHistogram | undefined;
  /** Max event-loop delay of each of the last intervals (ms), newest last. */
  private readonly lags: number[] = [];
  private readonly window: number;
  /**
   * The lag histogram's sampling interval: a fifth of the heartbeat interval, 10–100 ms. Its timer wakes
   * the process at that rate; at 10 ms it cost an idle worker ~0.7% of a core here, and the lags that
   * matter (they stretch a timeout of seconds) need no finer grain.
   */
  private readonly resolutionMs: number;
  private lastBeatAt: number | undefined;
  /** The JSON of the last heartbeat sent in full: the others are packed against it. */
  private lastFullText: Uint8Array | undefined;
  private beatsSinceFull = 0;
  private wanted: Subscription | undefined;
  private readonly answerPing: ((body: Uint8Array) => string | undefined) | undefined;

  /** `answerPing`: the reply to a ping that carries a body (a follower's membership check, job-worker.ts); none: an empty one. */
  constructor(private readonly nc: NatsConnection, private readonly names: JobNames, private readonly info: () => Omit<WorkerInfo, "lagMs">, options: { intervalMs?: number; answerPing?: (body: Uint8Array) => string | undefined } = {}) {
    const o = decodeOptions(t.partial({ intervalMs: PositiveInt, answerPing: FunctionOption }), options, "WorkerHeartbeat options");
    this.intervalMs = o.intervalMs ?? 500;
    this.answerPing = options.answerPing;
    this.window = Math.max(1, Math.ceil(5000 / this.intervalMs));
    this.resolutionMs = Math.min(100, Math.max(10, Math.round(this.intervalMs / 5)));
  }

  start(): void {
    if (this.timer) return;
    const { id } = this.info();
    this.ping = this.nc.subscribe(this.names.workerPing(id), {
      callback: (e, m) => {
        if (e) return;
        const answer = m.data.length > 0 ? this.answerPing?.(m.data) : undefined;
        m.respond(answer);
      },
    });
    // A view asks (one started since this worker's last full heartbeat, or one that missed it): send one
    // at once, outside the timer's lag bookkeeping (it is no late beat).
    this.wanted = this.nc.subscribe(this.names.workerHeartbeatsWanted, { callback: (e) => { if (!e && this.timer) this.publish(false, true); } });
    this.histogram = monitorEventLoopDelay({ resolution: this.resolutionMs });
    this.histogram.enable();
    this.lastFullText = undefined;
    this.timer = setInterval(() => this.beat(false), this.intervalMs);
    this.beat(false);
  }

  /** Publishes a last heartbeat with `leaving: true` and stops answering pings. */
  async stop(): Promise<void> {
    if (!this.timer) return;
    clearInterval(this.timer);
    this.timer = undefined;
    this.lastBeatAt = undefined;
    this.wanted?.unsubscribe();
    this.wanted = undefined;
    this.beat(true);
    this.histogram?.disable();
    this.ping?.unsubscribe();
    await flushConnection(this.nc).catch(() => {});
  }

  /** Event-loop delay: the max over about the last 5 s (ms). */
  get lagMs(): number {
    return Math.max(0, ...this.lags);
  }

  private beat(leaving: boolean): void {
    const now = performance.now();
    if (this.histogram) {
      // Delays beyond the sampling resolution: what a timer or a message waited for the loop. The
      // histogram's own sample of a stall may come after this timer, so this timer's lateness counts too.
      const late = this.lastBeatAt === undefined ? 0 : now - this.lastBeatAt - this.intervalMs;
      this.lags.push(Math.max(0, this.histogram.max / 1e6 - this.resolutionMs, late));
      if (this.lags.length > this.window) this.lags.shift();
      this.histogram.reset();
    }
    this.lastBeatAt = now;
    this.publish(leaving, leaving || this.beatsSinceFull + 1 >= FULL_HEARTBEAT_EVERY);
  }

  /** `full`: packed alone (also when none was sent yet), and the reference of the next ones; a leaving one is always full. */
  private publish(leaving: boolean, full: boolean): void {
    const hb: WorkerInfo = { ...this.info(), lagMs: Math.round(this.lagMs), ...(leaving ? { leaving: true } : {}) };
    const alone = full || this.lastFullText === undefined;
    const packed = packJsonAgainst(hb, alone ? undefined : this.lastFullText);
    if (alone) {
      this.lastFullText = packed.text;
      this.beatsSinceFull = 0;
    } else {
      this.beatsSinceFull++;
    }
    try {
      this.nc.publish(this.names.workerHeartbeats, packed.data);
    } catch {
      // connection closed: the view finds out through its pings
    }
  }
}

export interface MembershipOptions {
  /** Heartbeats missing this long (stretched by reported lag) → "missed-heartbeats"; default 3000. */
  timeoutMs?: number;
  /** How often each member is pinged; default 1000. */
  probeEveryMs?: number;
  /**
   * After this view's own connection was lost or moved, or a server left the cluster (the server's
   * connect-URL update), nobody is judged for this long (default 15000): a worker on the lost server needs
   * that to notice (pings) and reconnect elsewhere, and its heartbeats are missing meanwhile.
   */
  failoverGraceMs?: number;
  now?: () => number;
  log?: (line: string) => void;
}
export interface MembershipEvents { onJoin(w: WorkerInfo): void; onLeave(w: WorkerInfo, reason: LeaveReason): void }

interface Member { info: WorkerInfo; lastHeartbeatAt: number; lags: Array<{ at: number; lagMs: number }>; probing: boolean; noResponders: number }

/** Who sent a heartbeat of plain JSON (an older weir's), for the line that says so; undefined: not JSON. */
function plainJsonSender(data: Uint8Array): string | undefined {
  if (data[0] !== 0x7b) return undefined; // "{"
  try {
    const id = (JSON.parse(new TextDecoder().decode(data)) as { id?: unknown }).id;
    return typeof id === "string" ? `worker ${id}` : "a worker";
  } catch {
    return undefined;
  }
}

const incarnation = (w: WorkerInfo) => `${w.pid}@${w.host}@${w.startedAt}`;

export class MembershipView {
  private readonly timeoutMs: number;
  private readonly probeEveryMs: number;
  private readonly now: () => number;
  private readonly log: (line: string) => void;
  private readonly byId = new Map<string, Member>();
  /** The incarnation of each worker declared gone: its late heartbeats do not bring it back. */
  private readonly gone = new Map<string, string>();
  private sub: Subscription | undefined;
  private timer: ReturnType<typeof setInterval> | undefined;
  private lastCheckAt = 0;
  private warned = false;
  private readonly failoverGraceMs: number;
  /** Until when NATS is failing over (no verdicts); 0: not. */
  private graceUntil = 0;
  private watching = false;
  /** The workers' full heartbeats, the references of the others. */
  private readonly references = new PackedReferences(HEARTBEAT_REFERENCES);
  /** When this view last asked for full heartbeats (at most once per probe interval: no storm of requests). */
  private askedAt = Number.NEGATIVE_INFINITY;

  constructor(private readonly nc: NatsConnection, private readonly names: JobNames, options: MembershipOptions, private readonly events: MembershipEvents) {
    const o = decodeOptions(t.partial({ timeoutMs: PositiveInt, probeEveryMs: PositiveInt, failoverGraceMs: NonNegativeInt, now: FunctionOption, log: FunctionOption }), options, "MembershipView options") as MembershipOptions;
    this.timeoutMs = o.timeoutMs ?? 3000;
    this.failoverGraceMs = o.failoverGraceMs ?? 15_000;
    this.probeEveryMs = o.probeEveryMs ?? 1000;
    this.now = o.now ?? (() => performance.now());
    this.log = o.log ?? ((line) => process.stderr.write(`${line}\n`));
  }

  start(): void {
    if (this.sub) return;
    this.sub = this.nc.subscribe(this.names.workerHeartbeats, { callback: (e, m) => { if (!e) this.onHeartbeat(m.data); } });
    // Every worker's full heartbeat at once, not within 10 beats: a new leader's view learns the job's
    // workers as fast as before heartbeats were packed against each other (takeover).
    this.askForFullHeartbeats();
    this.lastCheckAt = this.now();
    this.timer = setInterval(() => this.check(), this.probeEveryMs);
    void this.watchConnection();
  }

  /** NATS is failing over: judge nobody for a while. */
  failingOver(): void {
    this.graceUntil = this.now() + this.failoverGraceMs;
  }

  private async watchConnection(): Promise<void> {
    if (this.watching) return;
    this.watching = true;
    try {
      for await (const s of this.nc.status()) {
        if (!this.sub) break;
        const lostServer = s.type === "update" && ((s as { deleted?: unknown[] }).deleted?.length ?? 0) > 0;
        if (s.type === "disconnect" || s.type === "reconnecting" || s.type === "reconnect" || s.type === "ldm" || lostServer) this.failingOver();
      }
    } catch { /* connection closed */ } finally {
      this.watching = false;
    }
  }

  stop(): void {
    this.sub?.unsubscribe();
    this.sub = undefined;
    clearInterval(this.timer);
  }

  /** Members sorted by id. */
  members(): MemberView[] {
    const now = this.now();
    return [...this.byId.values()]
      .map((m) => ({ ...m.info, heartbeatAgeMs: Math.max(0, now - m.lastHeartbeatAt) }))
      .sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  }

  /**
   * `id` answered for itself just now (a ping of its own, job-worker.ts): counts as a heartbeat, so that
   * it is not judged gone sooner than `timeoutMs` after this moment. False when `id` is not a member.
   */
  noteAlive(id: string): boolean {
    const m = this.byId.get(id);
    if (m === undefined) return false;
    m.lastHeartbeatAt = Math.max(m.lastHeartbeatAt, this.now());
    return true;
  }

  private askForFullHeartbeats(): void {
    const now = this.now();
    if (now - this.askedAt < this.probeEveryMs) return;
    this.askedAt = now;
    try {
      this.nc.publish(this.names.workerHeartbeatsWanted);
    } catch {
      // connection closed
    }
  }

  private onHeartbeat(data: Uint8Array): void {
    let value: unknown;
    try {
      const unpacked = unpackJsonText(data, "heartbeat", this.references);
      value = unpacked.value;
      if (!isPackedAgainst(data)) this.references.add(unpacked.text);
    } catch (e) {
      // Packed against a full heartbeat sent before this view started (or lost): not malformed.
      if (e instanceof MissingReferenceError) return this.askForFullHeartbeats();
      const sender = plainJsonSender(data);
      return this.malformed(sender !== undefined ? `${sender} sends its heartbeats as plain JSON: it runs a weir from before 2026-12-05 (every worker of a job must run the same version)` : messageOf(e));
    }
    const decoded = WorkerInfoCodec.decode(value);
    if (isLeft(decoded)) return this.malformed(describeErrors(decoded.left));
    const info = decoded.right;
    const now = this.now();
    const known = this.byId.get(info.id);
    if (this.gone.get(info.id) === incarnation(info)) return;
    if (known && incarnation(known.info) !== incarnation(info)) {
      // The same id restarted before its old process was found dead.
      this.leave(known, "crashed");
    }
    if (info.leaving) {
      const m = this.byId.get(info.id);
      if (m) { m.info = info; this.leave(m, "left"); }
      return;
    }
    const m = this.byId.get(info.id);
    if (m) {
      m.info = info;
      m.lastHeartbeatAt = now;
      m.noResponders = 0;
      m.lags.push({ at: now, lagMs: info.lagMs });
      while (m.lags.length > 0 && now - m.lags[0]!.at > 30_000) m.lags.shift();
      return;
    }
    this.gone.delete(info.id);
    this.byId.set(info.id, { info, lastHeartbeatAt: now, lags: [{ at: now, lagMs: info.lagMs }], probing: false, noResponders: 0 });
    this.events.onJoin(info);
  }

  private malformed(reason: string): void {
    if (!this.warned) this.log(`membership of job ${this.names.job}: ignoring a malformed heartbeat: ${reason}`);
    this.warned = true;
  }

  private leave(m: Member, reason: LeaveReason): void {
    if (this.byId.get(m.info.id) !== m) return;
    this.byId.delete(m.info.id);
    this.gone.set(m.info.id, incarnation(m.info));
    this.events.onLeave(m.info, reason);
  }

  private check(): void {
    const now = this.now();
    const late = now - this.lastCheckAt > 2 * this.probeEveryMs;
    this.lastCheckAt = now;
    // This process itself stalled: heartbeats that arrived meanwhile wait behind this timer in the event
    // loop. Judge nobody until they are read (next tick).
    if (late) return;
    if (now < this.graceUntil) {
      // NATS is failing over: heartbeats go missing without anyone having died. Count from its end.
      for (const m of this.byId.values()) m.lastHeartbeatAt = Math.max(m.lastHeartbeatAt, now);
      return;
    }
    for (const m of [...this.byId.values()]) {
      const recentLag = Math.max(0, ...m.lags.map((l) => l.lagMs));
      if (now - m.lastHeartbeatAt > Math.max(this.timeoutMs, 2 * recentLag)) {
        this.leave(m, "missed-heartbeats");
        continue;
      }
      // A member whose heartbeat (or ping of its own) came within the interval is alive: no probe. One
      // that is late is pinged, so a crash ("no responders") is still found within about two intervals.
      if (!m.probing && now - m.lastHeartbeatAt >= this.probeEveryMs) void this.probe(m);
    }
  }

  private async probe(m: Member): Promise<void> {
    m.probing = true;
    try {
      await this.nc.request(this.names.workerPing(m.info.id), undefined, { timeout: Math.min(this.probeEveryMs, 1000) });
      m.noResponders = 0;
    } catch (e) {
      // A timeout is no verdict (a hung worker still holds its subscriptions). "No responders" twice in a row,
      // with no heartbeat between, is a crash: once alone could be its server restarting under it.
      if ((e as { isNoResponders?: () => boolean }).isNoResponders?.() === true || /no responders/i.test(messageOf(e))) {
        m.noResponders++;
        if (this.now() < this.graceUntil) m.noResponders = 0;
        else if (m.noResponders >= 2) this.leave(m, "crashed");
        else setTimeout(() => { if (!m.probing && this.byId.get(m.info.id) === m) void this.probe(m); }, Math.min(200, this.probeEveryMs / 4));
      }
    } finally {
      m.probing = false;
    }
  }
}
