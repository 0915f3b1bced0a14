// JetStream publishes without nats.js's request machinery, for sinks that publish a message per record.
// `js.publish` is a request: a mux entry, a timer, and (even with noAsyncTraces) an Error with a stack
// trace built when each request is settled (RequestOne.cancel in nats-core): a soak job's profile showed
// that Error alone at 7% of its CPU. Here a publish is a plain publish with a reply subject on ONE
// wildcard inbox subscription, one sweep timer for timeouts, and the PubAck parsed as JSON. The caller
// bounds the publishes in flight (InflightWindow).

import { createInbox, type Msg, type MsgHdrs, type NatsConnection, type Subscription } from "@nats-io/transport-node";
import { PublishDenials } from "./denials.ts";

export interface PubAckLike {
  readonly stream: string;
  readonly seq: number;
  readonly duplicate: boolean;
}

export interface PipePublishOptions {
  /** Nats-Msg-Id: the stream drops a message whose id it saw within its duplicate window. */
  readonly msgID?: string;
  /** Nats-Expected-Stream: refused unless this stream captures the subject. */
  readonly expectStream?: string;
}

/** Where the outcome of a tracked publish goes; `index` is the one it was tracked with. */
export interface Settle {
  /** Only success or failure matters, not the ack's fields: a successful ack is not parsed. */
  readonly successOnly?: boolean;
  resolve(ack: PubAckLike, index: number): void;
  reject(e: Error, index: number): void;
}

interface Pending {
  readonly subject: string;
  readonly sentAt: number;
  readonly index: number;
  readonly settle: Settle;
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();

export class JetStreamPublishPipe {
  private readonly inbox: string;
  private readonly sub: Subscription;
  private readonly pending = new Map<number, Pending>();
  private readonly sweeper: ReturnType<typeof setInterval>;
  private nextId = 1;
  private closedReason: string | undefined;
  private readonly denials: PublishDenials;

  constructor(private readonly nc: NatsConnection, private readonly timeoutMs = 5000) {
    this.inbox = createInbox();
    const idStart = this.inbox.length + 1;
    this.sub = nc.subscribe(`${this.inbox}.*`, {
      callback: (err, msg) => {
        if (err) { this.failAll(err.message); return; }
        this.onReply(Number(msg.subject.slice(idStart)), msg);
      },
    });
    this.sweeper = setInterval(() => this.sweep(), Math.max(50, Math.floor(timeoutMs / 4)));
    this.sweeper.unref?.();
    // A publish the server denied gets no ack: it fails now, naming the permission, not after the timeout.
    this.denials = new PublishDenials(nc, (subject, e) => this.failSubject(subject, e));
  }

  publish(subject: string, payload: string | Uint8Array, o: PipePublishOptions = {}): Promise<PubAckLike> {
    if (this.closedReason !== undefined) return Promise.reject(new Error(this.closedReason));
    return new Promise<PubAckLike>((resolve, reject) => {
      const id = this.nextId++;
      this.pending.set(id, { subject, sentAt: performance.now(), index: 0, settle: { resolve, reject } });
      try {
        const data = typeof payload === "string" ? encoder.encode(payload) : payload;
        const reply = `${this.inbox}.${id}`;
        const h = pubHeaders(o);
        this.nc.publish(subject, data, h ? { reply, headers: h } : { reply });
      } catch (e) {
        this.pending.delete(id);
        reject(e as Error);
      }
    });
  }

  /**
   * For a publish written by other means (publish-batch.ts): returns the reply subject to send it with;
   * its ack (or failure, or timeout) goes to `settle` with `index`. Throws once the pipe is closed.
   */
  track(subject: string, index: number, settle: Settle): string {
    if (this.closedReason !== undefined) throw new Error(this.closedReason);
    const id = this.nextId++;
    this.pending.set(id, { subject, sentAt: performance.now(), index, settle });
    return `${this.inbox}.${id}`;
  }

  close(reason = "the publisher is closed"): void {
    if (this.closedReason !== undefined) return;
    this.closedReason = reason;
    clearInterval(this.sweeper);
    this.denials.stop();
    this.sub.unsubscribe();
    this.failAll(reason);
  }

  private onReply(id: number, msg: Msg): void {
    const p = this.pending.get(id);
    if (p === undefined) return; // timed out already
    this.pending.delete(id);
    if (p.settle.successOnly && isPlainSuccess(msg)) {
      p.settle.resolve(STORED, p.index);
      return;
    }
    let ack: PubAckLike;
    try {
      ack = parsePubAck(msg, p.subject);
    } catch (e) {
      p.settle.reject(e as Error, p.index);
      return;
    }
    p.settle.resolve(ack, p.index);
  }

  private sweep(): void {
    const deadline = performance.now() - this.timeoutMs;
    for (const [id, p] of this.pending) {
      if (p.sentAt > deadline) break; // insertion order = send order
      this.pending.delete(id);
      // "timeout" in the message: retried as a transient JetStream failure (state/backends/jetstream-retry.ts);
      // one sent after the server denied its subject: the permission, which no retry mends.
      p.settle.reject(this.denials.of(p.subject) ?? new Error(`publish to ${p.subject}: timeout after ${this.timeoutMs} ms`), p.index);
    }
  }

  /** Only on a denial: every publish waiting for an ack on `subject`. */
  private failSubject(subject: string, e: Error): void {
    for (const [id, p] of this.pending) {
      if (p.subject !== subject) continue;
      this.pending.delete(id);
      p.settle.reject(e, p.index);
    }
  }

  private failAll(reason: string): void {
    const all = [...this.pending.values()];
    this.pending.clear();
    for (const p of all) p.settle.reject(new Error(reason), p.index);
  }
}

/**
 * The headers of one publish, encoded directly: the client's `headers()` builds a map, validates every
 * value with regular expressions and re-encodes it per message, a visible share of a sink's CPU at tens
 * of thousands of publishes per second. Publishing reads nothing of a header object but `encode()`
 * (nats-core protocol.ts); the values here are weir's own message ids and validated stream names, and
 * one with a line break is refused rather than sent.
 */
function pubHeaders(o: PipePublishOptions): MsgHdrs | undefined {
  if (o.msgID === undefined && o.expectStream === undefined) return undefined;
  const text = headerText(o);
  return { encode: () => encoder.encode(text) } as unknown as MsgHdrs;
}

/** The header block of a publish with these options, as NATS puts it on the wire. */
export function headerText(o: PipePublishOptions): string {
  let text = "NATS/1.0";
  if (o.msgID !== undefined) text += `\r\nNats-Msg-Id: ${headerValue(o.msgID)}`;
  if (o.expectStream !== undefined) text += `\r\nNats-Expected-Stream: ${headerValue(o.expectStream)}`;
  return `${text}\r\n\r\n`;
}

const LINE_BREAK = /[\r\n]/;

function headerValue(v: string): string {
  if (LINE_BREAK.test(v)) throw new Error(`a header value cannot contain a line break: ${JSON.stringify(v).slice(0, 80)}`);
  return v.trim();
}

const STORED: PubAckLike = { stream: "", seq: 0, duplicate: false };
const QUOTE = 0x22;
const LOWER_S = 0x73;

/**
 * A PubAck that stored the message: no status header, and JSON whose first key is "stream" (the server
 * puts "error" first when there is one: JSPubAckResponse in nats-server's stream.go).
 */
function isPlainSuccess(msg: Msg): boolean {
  const d = msg.data;
  return d.length > 10 && d[0] === 0x7b && d[1] === QUOTE && d[2] === LOWER_S && !msg.headers;
}

function parsePubAck(msg: Msg, subject: string): PubAckLike {
  const h = msg.headers;
  if (h && h.code === 503) throw new Error(`publish to ${subject}: no responders`);
  if (h && h.code !== 0) throw new Error(`publish to ${subject} failed: ${h.code} ${h.description}`);
  const ack = JSON.parse(decoder.decode(msg.data)) as { stream?: string; seq?: number; duplicate?: boolean; error?: { code?: number; err_code?: number; description?: string } };
  if (ack.error) throw new Error(`${ack.error.description ?? JSON.stringify(ack.error)} (${ack.error.err_code ?? ack.error.code ?? "?"})`);
  return { stream: ack.stream ?? "", seq: ack.seq ?? 0, duplicate: ack.duplicate === true };
}
