// One filter subject of a JetStream source: an ordered pull consumer (the client recreates it at the right
// sequence after a gap, a reconnect or a lost consumer) whose messages a callback appends to a buffer that
// the reader drains whole on each poll.
//
// Why pull + callback (measured on this machine, nats-server 2.9.10, 100 B JSON, 1M messages, the reader
// pattern of draining a buffer per poll and JSON-parsing every message; three rounds each):
//   ordered pull consume, callback, max_messages 1000 ........ 318k–386k msgs/s
//   ordered pull consume, callback, + the refill gate below .. 328k–383k msgs/s
//   ordered pull consume, async iterator ..................... 272k–306k msgs/s
//   ordered push consumer, callback .......................... 359k–406k msgs/s
//   ordered push consumer, async iterator .................... 191k–214k msgs/s
// Push and pull callbacks are equally fast, but neither bounds memory: the client refills (pull) or
// answers flow control (push) on receipt, so a backpressured subtask would buffer the whole stream.
// Iterators bound it but cost 20–45%. So: pull + callback, and a gate that holds the consumer's refill
// request while the buffer is full and sends it once the reader drained it. The gate wraps the client's
// `pull` method (not part of its typed API); if a client version lacks it, the lane logs once and runs
// unbounded rather than failing.
//
// Watchdog: after a server restart the client's ordered consumer is recreated, may deliver a few hundred
// messages and then nothing until its heartbeats are missed ~45 s later (measured with the plain client).
// So a lane that received nothing for `stallMs` while not held back by the reader asks the server (one
// message-get, not per record) whether a message past its position exists; if one does, the lane
// replaces its consumer with a new one starting right after the last sequence it handed out.
//
// Catch-up: on a server with 2.9.10's per-message pending scan, a lane starting shortly behind the head
// reads unfiltered until it is near the head, then filtered (why and when: catch-up.ts).

import { randomBytes } from "node:crypto";
import type { ConsumerMessages, JetStreamClient, JsMsg, OrderedConsumerOptions } from "@nats-io/jetstream";
import { DeliverPolicy } from "@nats-io/jetstream";
import { ErrorCode, WeirError, messageOf } from "../core/errors.ts";
import { retryJetStream } from "../../state/backends/jetstream-retry.ts";
import { nextMessageOn } from "../../state/backends/jetstream-purge.ts";
import { firstCreated } from "./first-created.ts";
import { SMALL_LAG, readsUnfilteredFrom, type StreamHead } from "./catch-up.ts";
import { subjectMatcher } from "../nats/subject-match.ts";
import { StreamIdentity } from "./stream-identity.ts";

export type StartAt = "first" | "new" | { readonly sequence: number } | { readonly time: Date | string | number };

export interface LaneConfig {
  readonly js: JetStreamClient;
  readonly stream: string;
  readonly filter: string;
  readonly namePrefix: string;
  readonly startAt: StartAt;
  /** Restored offset: the last stream sequence delivered before; reading resumes right after it. */
  readonly resumeAfter: number | undefined;
  /** Read only what the consumer has pending when it is created, then end. */
  readonly bounded: boolean;
  /** Messages per pull request. */
  readonly maxMessages: number;
  /** Buffered messages at which refills wait for the reader. */
  readonly highWater: number;
  readonly wake: () => void;
  readonly log: (m: string) => void;
  /** Received nothing this long while behind the stream: the consumer is recreated. */
  readonly stallMs: number;
  /** The stream's replicas (default 1); on a replicated stream consumers are created two at a time (see createConsumer). */
  readonly streamReplicas?: number;
  /** The stream's head at open, given when the server needs the unfiltered catch-up (catch-up.ts). */
  readonly catchUpHead?: StreamHead;
}

type PullFn = (opts: unknown) => void;


type Consumer = Awaited<ReturnType<JetStreamClient["consumers"]["get"]>>;

export class ConsumerLane {
  private buffer: JsMsg[] = [];
  private messages: ConsumerMessages | undefined;
  /** Bumped when the consumer is replaced: messages of an older one are ignored. */
  private generation = 0;
  /** When the lane last received a message or was held back by its reader (watchdog). */
  private lastActivity = Date.now();
  private watching = false;
  /** Consumers recreated by the watchdog. */
  recreated = 0;
  private heldPull: { readonly send: PullFn; opts: unknown } | undefined;
  private closing: Promise<void> | undefined;
  /** Last stream sequence handed to the reader (checkpointed). */
  lastSequence: number;
  /** Messages behind the stream head, as of the last message handed out. */
  lag: number;
  /** Bounded: messages still to hand out. */
  private remaining: number;
  failure: Error | undefined;
  /** Whether the stream is still the one this lane started on (deleted, or deleted and made again). */
  private identity!: StreamIdentity;
  /** Reading unfiltered (catch-up): other subjects' messages are dropped on arrival. */
  private unfiltered: boolean;
  /** Bounded catch-up: the last sequence to read (the stream's head at open). */
  private readonly endSeq: number;
  /** Whether a message read unfiltered is this lane's. */
  private readonly isMine: (subject: string) => boolean;

  private constructor(readonly config: LaneConfig, private consumer: Consumer, startedAfter: number, pending: number, unfiltered: boolean) {
    this.lastSequence = startedAfter;
    this.lag = pending;
    this.unfiltered = unfiltered;
    this.isMine = subjectMatcher(config.filter);
    this.endSeq = unfiltered ? config.catchUpHead!.lastSeq : Number.POSITIVE_INFINITY;
    // Unfiltered, the consumer's pending count is every subject's: a bounded end is found by sequence.
    this.remaining = config.bounded && !unfiltered ? pending : Number.POSITIVE_INFINITY;
  }

  static async open(config: LaneConfig): Promise<ConsumerLane> {
    let consumer;
    const start = startOptions(config.resumeAfter, config.startAt);
    const from = start.deliver_policy === DeliverPolicy.StartSequence ? start.opt_start_seq : undefined;
    const unfiltered = config.catchUpHead !== undefined && from !== undefined && readsUnfilteredFrom(from, config.catchUpHead);
    try {
      consumer = await ConsumerLane.createConsumer(config, start, unfiltered);
    } catch (e) {
      const why = /stream not found/i.test(messageOf(e)) ? `stream "${config.stream}" not found` : messageOf(e);
      throw new WeirError(ErrorCode.Source, `Sources.jetstream: cannot read subject "${config.filter}" of stream "${config.stream}": ${why}`, { cause: e });
    }
    // The create response: how many messages are ahead (backlog, bounded end) and where it starts.
    const info = await retryJetStream(() => consumer.info(true));
    const lane = new ConsumerLane(config, consumer, info.delivered.stream_seq, info.num_pending, unfiltered);
    const created = (await retryJetStream(async () => (await config.js.jetstreamManager(false)).streams.info(config.stream)).catch(() => undefined))?.created;
    lane.identity = new StreamIdentity(config.stream, config.log, created);
    if (unfiltered) config.log(`Sources.jetstream: ${lane.where} starts ${config.catchUpHead!.lastSeq - from! + 1} messages behind the head: reading them unfiltered first (nats-server before 2.9.15 scans per message there)`);
    if (lane.remaining === 0) {
      await consumer.delete().catch(() => {});
      return lane;
    }
    await lane.consume();
    return lane;
  }

  /**
   * Creating a consumer times out while the stream's or the meta leader is being elected (a server of a
   * cluster lost), and also whenever the server places it on a lost server: nats-server 2.9.10 puts an
   * ordered (R1) consumer of a replicated stream on a random peer of the stream, offline ones included
   * (createGroupForConsumer in server/jetstream_cluster.go), and only that peer would answer. So: retried
   * through both, each attempt under a new name (a request under the same name is an update of the
   * consumer assigned to the lost server and times out again, however often it is repeated), and on a
   * replicated stream two attempts at once and one more each second while none answered (up to four),
   * the first consumer created taken and the others deleted: with one server of three lost, a round
   * waits out a request timeout only when all four land on it (1 in 81) instead of one in three. A
   * consumer an attempt created unseen is removed by the server once unused (the client's inactive
   * threshold).
   */
  private static createConsumer(config: LaneConfig, start: Partial<OrderedConsumerOptions>, unfiltered: boolean): Promise<Consumer> {
    const filter = unfiltered ? {} : { filter_subjects: config.filter };
    const attempt = () => config.js.consumers.get(config.stream, { ...filter, name_prefix: `${config.namePrefix}_${randomBytes(3).toString("hex")}`, ...start });
    if ((config.streamReplicas ?? 1) === 1) return retryJetStream(attempt);
    return retryJetStream(() => firstCreated(attempt, { first: 2, everyMs: 1000, max: 4 }));
  }

  private async consume(): Promise<void> {
    const generation = this.generation;
    const config = this.config;
    const messages = await this.consumer.consume({
      max_messages: config.maxMessages,
      callback: (m) => {
        if (generation !== this.generation) return;
        if (this.unfiltered && !this.keepWhileCatchingUp(m)) return;
        this.buffer.push(m);
        config.wake();
      },
    });
    this.messages = messages;
    this.lastActivity = Date.now();
    this.gateRefills(messages);
    this.hookResets();
    void messages.closed().then((err) => {
      if (err && this.closing === undefined && generation === this.generation) {
        this.failure = new WeirError(ErrorCode.Source, `Sources.jetstream: reading subject "${config.filter}" of stream "${config.stream}" failed: ${messageOf(err)}`, { cause: err });
        config.wake();
      }
    });
  }

  /**
   * Unfiltered catch-up: whether `m` is this lane's. Bounded, the head at open ends the lane; unbounded,
   * near the head (or far enough behind it to be out of the scanned block) it goes on filtered.
   */
  private keepWhileCatchingUp(m: JsMsg): boolean {
    this.lastActivity = Date.now();
    if (this.config.bounded) {
      if (this.remaining !== Number.POSITIVE_INFINITY) return false;
      const mine = m.seq <= this.endSeq && this.isMine(m.subject);
      if (m.seq >= this.endSeq || m.info.pending === 0) {
        this.remaining = this.buffer.length + (mine ? 1 : 0);
        if (this.remaining === 0) { this.lag = 0; void this.close(); this.config.wake(); }
      }
      return mine;
    }
    const pending = m.info.pending;
    if (!this.watching && !readsUnfilteredFrom(m.seq + 1, { lastSeq: m.seq + pending, bytesPerMessage: this.config.catchUpHead!.bytesPerMessage })) {
      void this.continueFiltered(m.seq + 1);
    }
    return this.isMine(m.subject);
  }

  /** Ends the catch-up: a filtered consumer from `from` (messages of the unfiltered one after this are ignored). */
  private async continueFiltered(from: number): Promise<void> {
    this.watching = true;
    this.unfiltered = false;
    try {
      await this.replaceConsumer(from);
    } catch (e) {
      // The watchdog recreates it (filtered now) once the lane has been idle for `stallMs`.
      this.config.log(`Sources.jetstream: ${this.where}: ${describeTimeout(e, `continuing filtered from sequence ${from}`)}`);
    } finally {
      this.watching = false;
    }
  }

  /** Where this lane reads, for log lines. */
  private get where(): string {
    return `subject "${this.config.filter}" of stream "${this.config.stream}" (consumer ${this.config.namePrefix})`;
  }

  /**
   * Called periodically: if nothing arrived for `stallMs` (default the lane's) though nothing held the lane back, and the stream
   * has a message past the lane's position, replaces the consumer with one starting right after it.
   */
  async watch(stallMs = this.config.stallMs): Promise<void> {
    if (this.watching || this.closing !== undefined || this.done) return;
    const now = Date.now();
    if (this.buffer.length > 0 || this.heldPull !== undefined) { this.lastActivity = now; return; }
    const idleMs = now - this.lastActivity;
    if (idleMs < stallMs) return;
    this.watching = true;
    const from = this.lastSequence + 1;
    try {
      const jsm = await this.config.js.jetstreamManager(false);
      const gone = await this.identity.check(jsm, this.where);
      if (gone !== undefined) {
        this.failure = gone;
        this.config.wake(); // an idle poll may be waiting up to a second
        return;
      }
      if (this.identity.missing) { this.lastActivity = Date.now(); return; } // said once; checked again in stallMs
      // A replacement that failed left the lane without a consumer: try again (nothing else would).
      if (this.messages === undefined) {
        this.config.log(`Sources.jetstream: ${this.where} has no consumer (the last replacement failed): recreating it from sequence ${from}`);
        await this.recreate(from);
        return;
      }
      const next = await nextMessageOn(jsm, this.config.stream, this.config.filter, from);
      if (next === null || this.buffer.length > 0 || this.lastSequence + 1 !== from || this.closing !== undefined) {
        this.lastActivity = Date.now();
        return;
      }
      this.config.log(`Sources.jetstream: ${this.where} received nothing for ${idleMs} ms though message ${next.seq} is in the stream: recreating the consumer from sequence ${from}`);
      await this.recreate(from);
    } catch (e) {
      this.config.log(`Sources.jetstream: watchdog of ${this.where}: ${describeTimeout(e, `checking for messages from sequence ${from}`)}; trying again in ${stallMs} ms`);
      this.lastActivity = Date.now();
    } finally {
      this.watching = false;
    }
  }

  /** The watchdog's replacement: unfiltered first when far behind (catchUpIfBehind). */
  private async recreate(from: number): Promise<void> {
    this.catchUpIfBehind();
    await this.replaceConsumer(from);
    this.recreated++;
  }

  private async replaceConsumer(from: number): Promise<void> {
    this.generation++;
    this.heldPull = undefined;
    const old = { messages: this.messages, consumer: this.consumer };
    this.messages = undefined;
    void old.messages?.close().catch(() => {});
    void old.consumer.delete().catch(() => {});
    const consumer = await ConsumerLane.createConsumer(this.config, { deliver_policy: DeliverPolicy.StartSequence, opt_start_seq: from }, this.unfiltered);
    if (this.closing !== undefined) { await consumer.delete().catch(() => {}); return; }
    this.consumer = consumer;
    await this.consume();
  }

  /** Bounded and everything it had to read was handed out. */
  get done(): boolean { return this.remaining === 0; }

  get buffered(): number { return this.buffer.length; }

  /**
   * Moves the buffered messages, at most `limit` (the rest stay buffered), to `out` (bounded: no further
   * than the end) and releases a held refill once the buffer is below its high water.
   */
  drain(out: JsMsg[], limit = Number.POSITIVE_INFINITY): void {
    const b = this.buffer;
    if (b.length === 0) {
      // A refill held while the buffer was full must go out even when this poll finds nothing new.
      this.releaseRefill();
      return;
    }
    if (limit <= 0) return;
    this.lastActivity = Date.now();
    const n = Math.min(b.length, this.remaining, limit);
    this.buffer = n === limit && n < b.length ? b.slice(n) : [];
    for (let i = 0; i < n; i++) out.push(b[i]!);
    if (n > 0) {
      const last = b[n - 1]!;
      this.lastSequence = last.seq;
      this.lag = last.info.pending;
    }
    if (this.remaining !== Number.POSITIVE_INFINITY) {
      this.remaining -= n;
      if (this.remaining === 0) {
        this.lag = 0;
        void this.close();
        return;
      }
    }
    if (this.buffer.length < this.config.highWater) this.releaseRefill();
  }

  close(): Promise<void> {
    return (this.closing ??= (async () => {
      this.heldPull = undefined;
      await this.messages?.close().catch(() => {});
      await this.consumer.delete().catch(() => {});
    })());
  }

  /**
   * A consumer recreated more than a little behind (the watchdog's, or the client's own after missed
   * heartbeats or a reconnect) could land in the scanned half of the last block like a restored one:
   * unbounded, it reads unfiltered, and the first message tells whether it is near enough the head to
   * stay so (keepWhileCatchingUp). Bounded lanes count their end by messages and keep their filter.
   */
  private catchUpIfBehind(): boolean {
    if (this.unfiltered || this.config.bounded || this.config.catchUpHead === undefined || this.lag <= SMALL_LAG) return false;
    this.unfiltered = true;
    this.config.log(`Sources.jetstream: ${this.where} is recreated ${this.lag} messages behind: reading unfiltered until near the head`);
    return true;
  }

  /** The client recreates an ordered consumer from `getConsumerOpts()` (not part of its typed API). */
  private hookResets(): void {
    const impl = this.consumer as unknown as { getConsumerOpts?: () => Record<string, unknown> };
    if (this.config.catchUpHead === undefined || typeof impl.getConsumerOpts !== "function") return;
    const options = impl.getConsumerOpts.bind(this.consumer);
    impl.getConsumerOpts = () => {
      const conf = options();
      if (this.catchUpIfBehind()) { delete conf["filter_subject"]; delete conf["filter_subjects"]; }
      return conf;
    };
  }

  private gateRefills(messages: ConsumerMessages): void {
    const impl = messages as unknown as { pull?: PullFn };
    if (typeof impl.pull !== "function") {
      this.config.log(`Sources.jetstream: this @nats-io/jetstream version has no pull hook; subject "${this.config.filter}" reads without a buffer bound`);
      return;
    }
    const send = impl.pull.bind(messages);
    impl.pull = (opts: unknown) => {
      if (this.buffer.length >= this.config.highWater) this.heldPull = { send, opts };
      else send(opts);
    };
  }

  private releaseRefill(): void {
    const held = this.heldPull;
    if (held === undefined || this.closing !== undefined) return;
    this.heldPull = undefined;
    held.send(held.opts);
  }
}

/** What timed out (or failed), in words: the client's own message is a bare "timeout". */
function describeTimeout(e: unknown, operation: string): string {
  const m = messageOf(e);
  return /^timeout$/i.test(m) ? `${operation} timed out` : `${operation} failed: ${m}`;
}

function startOptions(resumeAfter: number | undefined, startAt: StartAt): Partial<OrderedConsumerOptions> {
  if (resumeAfter !== undefined) return { deliver_policy: DeliverPolicy.StartSequence, opt_start_seq: resumeAfter + 1 };
  if (startAt === "first") return { deliver_policy: DeliverPolicy.All };
  if (startAt === "new") return { deliver_policy: DeliverPolicy.New };
  if ("sequence" in startAt) return { deliver_policy: DeliverPolicy.StartSequence, opt_start_seq: startAt.sequence };
  return { deliver_policy: DeliverPolicy.StartTime, opt_start_time: new Date(startAt.time).toISOString() };
}
