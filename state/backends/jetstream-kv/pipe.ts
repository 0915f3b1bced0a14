// A pipelined client for the few KV operations the backend needs: direct gets, puts, erasures.
//
// Why not kv.get / kv.put: on this machine they top out at ~30k/s at any depth because each call pays
// nats.js's request machinery (a promise, a timer and a mux entry per request). The server does far more:
// plain publishes with a reply subject on ONE wildcard inbox subscription, and one sweep timer for
// timeouts, measured ~100-115k direct gets/s and ~95k acknowledged puts/s (docs/state.md). Every put
// still gets its own PubAck, so a failed write is reported, never lost silently.
//
// While JetStream elects a leader for the bucket's stream (a server of a cluster lost), puts find no
// responder, leader reads answer "temporarily unavailable", and requests sent to a server just lost get
// no answer. Such a request is sent again (under a new id) until an answer or `retryBudgetMs`; on a
// replicated bucket, requests still unanswered when the stream's new leader announces itself (JetStream's
// leader-elected advisory) are sent again at once rather than after their `timeoutMs`; and after such an
// advisory, or once the client reports that the cluster's servers changed, what stays unanswered for 2 s
// is sent again (once in a full `npm test`, 133 puts stayed unanswered for 90 s after the bucket's
// leader was killed, in tests/cluster-elections; whether the advisory was missed is not known). Every
// operation here may be repeated: a get reads; a put writes the same value to the same key (history 1:
// a duplicate replaces the first), and no other write of that key is issued until it settles (flushes
// and materializations are serialized); a purge or a delete by sequence that did land is a no-op again
// (a repeated delete answers "no message found", which the caller takes as "purge the key").

import { createInbox, Empty, headers, type Msg, type MsgHdrs, type NatsConnection, type Subscription } from "@nats-io/transport-node";
import { onServerChanges, type StopWatching } from "../../../runtime/core/server-changes.ts";
import { StateAccessError, StateWriteConflictError } from "../../errors.ts";
import { JETSTREAM_RETRY_BUDGET_MS } from "../jetstream-retry.ts";
import { expectation, Lane, type Pending } from "./pipe-lanes.ts";
import { parseAck, parseDeleted, parseGet, parseLeaderGet, Unavailable, WrongLastSequence, type StoredMessage } from "./pipe-replies.ts";

export interface KvPipeOptions {
  /** Gets in flight at most; more wait in order. Separate from writes, so a large flush does not delay reads. */
  readonly getWindow: number;
  /** Writes (puts, deletes) in flight at most. */
  readonly writeWindow: number;
  readonly timeoutMs: number;
  /**
   * Read through the stream leader (`STREAM.MSG.GET`) instead of direct gets: for a replicated bucket,
   * where a follower's direct get may miss an acknowledged write. Costs a JSON and base64 decode per read.
   */
  readonly leaderReads?: boolean;
  /** How long a request is sent again while the bucket's stream has no leader or gave no answer. Default 30 s; 0: never. */
  readonly retryBudgetMs?: number;
  /**
   * Whether writes may go out now (a worker's fence: actors/worker/state-write-fence.ts). While not, they
   * wait in order, checked again every FENCE_RECHECK_MS; reads go on. A fence closed for `retryBudgetMs`
   * fails the writes waiting (the worker was surely fenced; a close must not wait for them for ever). None: always.
   */
  readonly mayWrite?: () => boolean;
}

/** How often writes held by a closed fence (KvPipeOptions.mayWrite) look again. */
const FENCE_RECHECK_MS = 50;

/** After a leader-elected advisory or a change of servers, what stays unanswered this long is sent again. */
const ELECTION_FOLLOW_UP_MS = 2000;

const encoder = new TextEncoder();

export class KvPipe {
  private readonly inbox: string;
  private readonly sub: Subscription;
  private readonly elections: Subscription | undefined;
  private readonly inflight = new Map<number, Pending>();
  private readonly gets: Lane;
  private readonly writes: Lane;
  private nextId = 1;
  private readonly sweeper: ReturnType<typeof setInterval>;
  /** Requests waiting to be sent again (a leader election), by their timer. */
  private readonly retrying = new Map<ReturnType<typeof setTimeout>, Pending>();
  private closedReason: string | undefined;
  /** Stops the watch of server changes (replicated buckets) on close. */
  private readonly stopWatchingServers: StopWatching | undefined;
  /** The follow-up after a leader election or a change of servers (ELECTION_FOLLOW_UP_MS). */
  private followUp: ReturnType<typeof setTimeout> | undefined;
  /** The next look at a closed fence, while writes wait behind it. */
  private fenceRecheck: ReturnType<typeof setTimeout> | undefined;
  /** When the fence was found closed, while it stays so (0: open). */
  private fenceClosedSince = 0;
  readonly stream: string;
  private readonly putPrefix: string;
  private readonly getPrefix: string;
  private readonly purgeSubject: string;
  private readonly deleteSubject: string;
  remoteReads = 0;
  remoteWrites = 0;
  /** Requests sent again (no leader, no answer). */
  retries = 0;
  /** Most gets in flight at once so far (how well reads are pipelined). */
  peakGetsInFlight = 0;

  constructor(private readonly nc: NatsConnection, readonly bucket: string, private readonly options: KvPipeOptions) {
    this.stream = `KV_${bucket}`;
    this.putPrefix = `$KV.${bucket}.`;
    this.getPrefix = options.leaderReads ? `$JS.API.STREAM.MSG.GET.${this.stream}` : `$JS.API.DIRECT.GET.${this.stream}.$KV.${bucket}.`;
    this.purgeSubject = `$JS.API.STREAM.PURGE.${this.stream}`;
    this.deleteSubject = `$JS.API.STREAM.MSG.DELETE.${this.stream}`;
    this.gets = new Lane(options.getWindow);
    this.writes = new Lane(options.writeWindow);
    this.inbox = createInbox();
    const idStart = this.inbox.length + 1;
    this.sub = nc.subscribe(`${this.inbox}.*`, {
      callback: (err, msg) => {
        if (err) { this.failAll(err); return; }
        this.onReply(parseId(msg.subject, idStart), msg);
      },
    });
    this.sweeper = setInterval(() => this.sweep(), Math.max(50, Math.floor(options.timeoutMs / 4)));
    this.sweeper.unref?.();
    // Without the permission to subscribe the server refuses it on the side: requests then wait out timeoutMs.
    this.elections = options.leaderReads
      ? nc.subscribe(`$JS.EVENT.ADVISORY.STREAM.LEADER_ELECTED.${this.stream}`, { callback: (err) => { if (!err) this.resendUnanswered(); } })
      : undefined;
    // A server of the cluster lost: what it was sent may never be answered.
    this.stopWatchingServers = options.leaderReads ? onServerChanges(nc, () => this.followUpAfter(performance.now())) : undefined;
  }

  /** A replicated bucket (reads through the stream leader; no conditional writes: FACTS.md, KV compare-and-set). */
  get replicated(): boolean { return this.options.leaderReads === true; }

  /** Writes go through a fence (KvPipe.mayWrite): a worker's, whose key groups another worker may take over while it runs. */
  get fenced(): boolean { return this.options.mayWrite !== undefined; }

  /** Writes waiting because the fence is closed (KvPipeOptions.mayWrite); 0 while it is open. */
  get writesFenced(): number { return this.fenceClosedSince === 0 ? 0 : this.writes.queued; }

  /** Requests sent and not answered, plus those waiting to be sent. */
  get pending(): number { return this.inflight.size + this.gets.queued + this.writes.queued + this.retrying.size; }

  /** The stored bytes of `key`, or undefined when absent or deleted. */
  get(key: string): Promise<Uint8Array | undefined> {
    return this.read(key).then(dataOf);
  }

  /** The key's message (its bytes, and its sequence, 0: none): what a conditional write of the key expects. */
  read(key: string): Promise<StoredMessage> {
    this.remoteReads++;
    if (this.options.leaderReads) return this.send(this.getPrefix, encoder.encode(`{"last_by_subj":${JSON.stringify(this.putPrefix + key)}}`), undefined, "get", parseLeaderGet) as Promise<StoredMessage>;
    return this.send(this.getPrefix + key, Empty, undefined, "get", parseGet) as Promise<StoredMessage>;
  }

  /**
   * Stores `data` under `key`; resolves with the stream sequence once the server acknowledged it. With
   * `expect`, only if the key's last message is still that one (0: the key holds none): the server checks
   * it (Nats-Expected-Last-Subject-Sequence), and a refusal rejects with a StateWriteConflictError unless
   * the key holds `data` already (a repeated write whose first attempt landed).
   */
  put(key: string, data: Uint8Array, expect?: number): Promise<number> {
    this.remoteWrites++;
    return new Promise((resolve, reject) => this.enqueue(this.putPrefix + key, data, expectation(expect), "write", parseAck, undefined, resolve as Pending["resolve"], reject, expect));
  }

  /**
   * `put` without a promise: `stored(seq, tag)` once the server acknowledged it, or `failed(error, tag)`.
   * A flush's many writes share two functions instead of a promise, its closures and its reactions each.
   */
  putThen<T>(key: string, data: Uint8Array, tag: T, stored: (seq: number, tag: T) => void, failed: (e: unknown, tag: T) => void, expect?: number): void {
    this.remoteWrites++;
    this.enqueue(this.putPrefix + key, data, expectation(expect), "write", parseAck, tag, stored as Pending["resolve"], failed as Pending["reject"], expect);
  }

  /**
   * Removes the message with stream sequence `seq`, leaving nothing behind; resolves false when the stream
   * has no such message. Unlike `erase`, whose subject-filtered purge the 2.9 server answers by walking the
   * stream (measured here: 5–8k erasures/s on a fresh bucket, under 2k/s once it holds interior deletes,
   * timing out at 100k keys), a delete by sequence costs the same whatever the bucket holds (~7–10k/s).
   */
  deleteSeq(seq: number): Promise<boolean> {
    this.remoteWrites++;
    return this.send(this.deleteSubject, encoder.encode(JSON.stringify({ seq, no_erase: true })), undefined, "write", parseDeleted) as Promise<boolean>;
  }

  /**
   * Removes every message of `key` from the bucket's stream, leaving nothing behind (a replicated bucket:
   * a purge marker, which stays). A KV delete or purge
   * leaves a marker message per key for ever: state that lives under ever-new keys (one per event-time
   * window) would grow the bucket without bound. Readers take "no message" as absent, as they take a marker.
   */
  erase(key: string): Promise<number> {
    // On a replicated bucket, a purge marker instead (it stays): 2.9.10 replays a subject-filtered purge as
    // a purge of every key when a replica recovers its log (state/backends/jetstream-purge.ts).
    if (this.options.leaderReads) return this.purge(key);
    this.remoteWrites++;
    return this.send(this.purgeSubject, encoder.encode(JSON.stringify({ filter: this.putPrefix + key })), undefined, "write", parseAck) as Promise<number>;
  }

  /** Deletes `key` (a KV delete marker; with history 1 it replaces the value). */
  delete(key: string): Promise<number> {
    this.remoteWrites++;
    const h = headers();
    h.set("KV-Operation", "DEL");
    return this.send(this.putPrefix + key, Empty, h, "write", parseAck) as Promise<number>;
  }

  /** Purges `key`: a purge marker replaces its messages (the marker itself stays; `erase` leaves nothing). */
  purge(key: string): Promise<number> {
    this.remoteWrites++;
    const h = headers();
    h.set("KV-Operation", "PURGE");
    h.set("Nats-Rollup", "sub");
    return this.send(this.putPrefix + key, Empty, h, "write", parseAck) as Promise<number>;
  }

  close(reason = "the state backend is closed"): void {
    if (this.closedReason) return;
    this.closedReason = reason;
    clearInterval(this.sweeper);
    clearTimeout(this.followUp);
    clearTimeout(this.fenceRecheck);
    this.stopWatchingServers?.();
    this.sub.unsubscribe();
    this.elections?.unsubscribe();
    this.failAll(new StateAccessError(reason));
  }

  private send(subject: string, payload: Uint8Array, h: MsgHdrs | undefined, kind: Pending["kind"], parse: Pending["parse"]): Promise<unknown> {
    return new Promise((resolve, reject) => this.enqueue(subject, payload, h, kind, parse, undefined, resolve, reject));
  }

  private enqueue(subject: string, payload: Uint8Array, h: MsgHdrs | undefined, kind: Pending["kind"], parse: Pending["parse"], tag: unknown, resolve: Pending["resolve"], reject: Pending["reject"], expect?: number): void {
    if (this.closedReason) {
      reject(new StateAccessError(this.closedReason), tag);
      return;
    }
    const p: Pending = { id: 0, subject, payload, headers: h, kind, parse, sentAt: 0, firstSentAt: 0, retryDelayMs: 0, expect, tag, resolve, reject };
    const lane = kind === "get" ? this.gets : this.writes;
    if (lane.inflight < lane.window && lane.queued === 0 && (lane === this.gets || this.fenceOpen())) this.transmit(p, lane);
    else lane.waiting.push(p);
  }

  private transmit(p: Pending, lane: Lane): void {
    // A new id per attempt: a late answer to an earlier one finds nothing and is dropped.
    p.id = this.nextId++;
    p.sentAt = performance.now();
    if (p.firstSentAt === 0) p.firstSentAt = p.sentAt;
    this.inflight.set(p.id, p);
    lane.inflight++;
    if (lane === this.gets && lane.inflight > this.peakGetsInFlight) this.peakGetsInFlight = lane.inflight;
    try {
      this.nc.publish(p.subject, p.payload, p.headers ? { reply: `${this.inbox}.${p.id}`, headers: p.headers } : { reply: `${this.inbox}.${p.id}` });
    } catch (e) {
      this.settled(p);
      p.reject(new StateAccessError(`cannot send to NATS: ${(e as Error).message}`, { cause: e }), p.tag);
    }
  }

  /** Frees the slot of an answered (or failed) request. */
  private settled(p: Pending): void {
    this.inflight.delete(p.id);
    (p.kind === "get" ? this.gets : this.writes).inflight--;
  }

  private onReply(id: number, msg: Msg): void {
    const p = this.inflight.get(id);
    if (!p) return; // timed out already
    this.settled(p);
    let result: unknown;
    try {
      result = p.parse(msg, this.stream);
    } catch (e) {
      if (e instanceof WrongLastSequence && p.expect !== undefined) this.checkConflict(p, e);
      else if (!(e instanceof Unavailable && this.retryLater(p))) p.reject(e, p.tag);
      this.pump();
      return;
    }
    try {
      p.resolve(result, p.tag);
    } finally {
      this.pump();
    }
  }

  /**
   * A conditional put refused: the key changed since its writer saw it. Unless it holds `p`'s bytes now
   * (the put was sent again, and its first attempt landed; or another writer stored the same value), the
   * write is a conflict: another subtask owns the key now.
   */
  private checkConflict(p: Pending, refusal: WrongLastSequence): void {
    const key = p.subject.slice(this.putPrefix.length);
    this.read(key).then((now) => {
      if (now.data !== undefined && Buffer.compare(now.data, p.payload) === 0) p.resolve(now.seq, p.tag);
      else p.reject(new StateWriteConflictError(this.bucket, key, p.expect!, { cause: refusal }), p.tag);
    }, (e: unknown) => p.reject(e, p.tag));
  }

  /** Sends `p` again after a pause (growing to 1 s) unless that would pass its retry budget; false: give up. */
  private retryLater(p: Pending): boolean {
    p.retryDelayMs = Math.min(Math.max(p.retryDelayMs * 2, 100), 1000);
    const budget = this.options.retryBudgetMs ?? JETSTREAM_RETRY_BUDGET_MS;
    if (this.closedReason || performance.now() + p.retryDelayMs - p.firstSentAt > budget) return false;
    this.retries++;
    const timer = setTimeout(() => {
      this.retrying.delete(timer);
      const lane = p.kind === "get" ? this.gets : this.writes;
      lane.waiting.push(p);
      this.pumpLane(lane);
    }, p.retryDelayMs);
    this.retrying.set(timer, p);
    return true;
  }

  /** A new stream leader: what the lost one was sent will never be answered, so send it again now. */
  private resendUnanswered(sentBefore = Number.POSITIVE_INFINITY): void {
    if (this.closedReason) return;
    const budget = this.options.retryBudgetMs ?? JETSTREAM_RETRY_BUDGET_MS;
    let again = 0;
    for (const p of [...this.inflight.values()]) {
      if (p.sentAt > sentBefore) break; // insertion order = send order
      if (performance.now() - p.firstSentAt > budget) continue; // its timeout decides
      this.settled(p);
      this.retries++;
      again++;
      (p.kind === "get" ? this.gets : this.writes).waiting.push(p);
    }
    this.pump();
    if (again > 0) this.followUpAfter(performance.now());
  }

  /** In ELECTION_FOLLOW_UP_MS, sends again what was sent before `sentBefore` and is still unanswered. */
  private followUpAfter(sentBefore: number): void {
    clearTimeout(this.followUp);
    this.followUp = setTimeout(() => { this.followUp = undefined; this.resendUnanswered(sentBefore); }, ELECTION_FOLLOW_UP_MS);
    this.followUp.unref?.();
  }

  private pump(): void {
    this.pumpLane(this.gets);
    this.pumpLane(this.writes);
  }

  private pumpLane(lane: Lane): void {
    if (lane === this.writes && lane.queued > 0 && !this.fenceOpen()) return;
    while (lane.queued > 0 && lane.inflight < lane.window) this.transmit(lane.shift(), lane);
  }

  /** Whether writes may go out now; when not, a look again is scheduled for the writes waiting. */
  private fenceOpen(): boolean {
    const mayWrite = this.options.mayWrite;
    if (mayWrite === undefined || mayWrite()) {
      this.fenceClosedSince = 0;
      return true;
    }
    const now = performance.now();
    if (this.fenceClosedSince === 0) this.fenceClosedSince = now;
    const budget = this.options.retryBudgetMs ?? JETSTREAM_RETRY_BUDGET_MS;
    if (now - this.fenceClosedSince > budget) {
      const e = new StateAccessError(`writes to KV bucket ${this.bucket} held for ${Math.round(now - this.fenceClosedSince)} ms: this worker could not confirm that it still runs in the job's epoch (fenced?)`);
      while (this.writes.queued > 0) { const p = this.writes.shift(); p.reject(e, p.tag); }
    }
    if (this.fenceRecheck === undefined && !this.closedReason) {
      this.fenceRecheck = setTimeout(() => { this.fenceRecheck = undefined; this.pumpLane(this.writes); }, FENCE_RECHECK_MS);
      this.fenceRecheck.unref?.();
    }
    return false;
  }

  private sweep(): void {
    const deadline = performance.now() - this.options.timeoutMs;
    for (const p of this.inflight.values()) {
      if (p.sentAt > deadline) break; // insertion order = send order
      this.settled(p);
      if (this.retryLater(p)) continue;
      const retried = p.sentAt - p.firstSentAt > 0 ? ` (sent again for ${Math.round(p.sentAt - p.firstSentAt)} ms before)` : "";
      p.reject(new StateAccessError(`${p.kind === "get" ? "reading" : "writing"} ${p.subject} timed out after ${this.options.timeoutMs} ms${retried}`), p.tag);
    }
    this.pump();
  }

  private failAll(e: unknown): void {
    for (const [timer, p] of this.retrying) { clearTimeout(timer); p.reject(e, p.tag); }
    this.retrying.clear();
    for (const p of this.inflight.values()) p.reject(e, p.tag);
    this.inflight.clear();
    for (const lane of [this.gets, this.writes]) {
      while (lane.queued > 0) { const p = lane.shift(); p.reject(e, p.tag); }
      lane.inflight = 0;
    }
  }
}

const dataOf = (m: StoredMessage): Uint8Array | undefined => m.data;

/** The request id at the end of a reply subject, without allocating a substring. */
function parseId(subject: string, start: number): number {
  let id = 0;
  for (let i = start; i < subject.length; i++) id = id * 10 + (subject.charCodeAt(i) - 48);
  return id;
}
