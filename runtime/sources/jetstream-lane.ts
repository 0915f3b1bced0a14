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

import type { ConsumerMessages, JetStreamClient, JsMsg, OrderedConsumerOptions } from "@nats-io/jetstream";
import { DeliverPolicy } from "@nats-io/jetstream";
import { ErrorCode, WeirError, messageOf } from "../errors.ts";

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
}

type PullFn = (opts: unknown) => void;

export class ConsumerLane {
  private buffer: JsMsg[] = [];
  private messages: ConsumerMessages | undefined;
  private heldPull: { readonly send: PullFn; opts: unknown } | undefined;
  private closing: Promise<void> | undefined;
  /** Last stream sequence handed to the reader (checkpointed). */
  lastSequence: number;
  /** Messages behind the stream head, as of the last message handed out. */
  lag: number;
  /** Bounded: messages still to hand out. */
  private remaining: number;
  failure: Error | undefined;

  private constructor(readonly config: LaneConfig, private readonly consumer: Awaited<ReturnType<JetStreamClient["consumers"]["get"]>>, startedAfter: number, pending: number) {
    this.lastSequence = startedAfter;
    this.lag = pending;
    this.remaining = config.bounded ? pending : Number.POSITIVE_INFINITY;
  }

  static async open(config: LaneConfig): Promise<ConsumerLane> {
    const opts: Partial<OrderedConsumerOptions> = { filter_subjects: config.filter, name_prefix: config.namePrefix };
    Object.assign(opts, startOptions(config.resumeAfter, config.startAt));
    let consumer;
    try {
      consumer = await config.js.consumers.get(config.stream, opts);
    } catch (e) {
      const why = /stream not found/i.test(messageOf(e)) ? `stream "${config.stream}" not found` : messageOf(e);
      throw new WeirError(ErrorCode.Source, `Sources.jetstream: cannot read subject "${config.filter}" of stream "${config.stream}": ${why}`, { cause: e });
    }
    // The create response: how many messages are ahead (backlog, bounded end) and where it starts.
    const info = await consumer.info(true);
    const lane = new ConsumerLane(config, consumer, info.delivered.stream_seq, info.num_pending);
    if (lane.remaining === 0) {
      await consumer.delete().catch(() => {});
      return lane;
    }
    const messages = await consumer.consume({
      max_messages: config.maxMessages,
      callback: (m) => {
        lane.buffer.push(m);
        config.wake();
      },
    });
    lane.messages = messages;
    lane.gateRefills(messages);
    void messages.closed().then((err) => {
      if (err && lane.closing === undefined) {
        lane.failure = new WeirError(ErrorCode.Source, `Sources.jetstream: reading subject "${config.filter}" of stream "${config.stream}" failed: ${messageOf(err)}`, { cause: err });
        config.wake();
      }
    });
    return lane;
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

function startOptions(resumeAfter: number | undefined, startAt: StartAt): Partial<OrderedConsumerOptions> {
  if (resumeAfter !== undefined) return { deliver_policy: DeliverPolicy.StartSequence, opt_start_seq: resumeAfter + 1 };
  if (startAt === "first") return { deliver_policy: DeliverPolicy.All };
  if (startAt === "new") return { deliver_policy: DeliverPolicy.New };
  if ("sequence" in startAt) return { deliver_policy: DeliverPolicy.StartSequence, opt_start_seq: startAt.sequence };
  return { deliver_policy: DeliverPolicy.StartTime, opt_start_time: new Date(startAt.time).toISOString() };
}
