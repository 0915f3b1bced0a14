// JetStream publishes without nats.js's request machinery, for sinks that publish a message per record.
// `js.publish` is a request: a mux entry, a timer, and (even with noAsyncTraces) an Error with a stack
// trace built when each request is settled (RequestOne.cancel in nats-core): a soak job's profile showed
// that Error alone at 7% of its CPU. Here a publish is a plain publish with a reply subject on ONE
// wildcard inbox subscription, one sweep timer for timeouts, and the PubAck parsed as JSON. The caller
// bounds the publishes in flight (InflightWindow).

import { createInbox, headers, type Msg, type NatsConnection, type Subscription } from "@nats-io/transport-node";

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

interface Pending {
  readonly subject: string;
  readonly sentAt: number;
  resolve(ack: PubAckLike): void;
  reject(e: Error): void;
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
  }

  publish(subject: string, payload: string | Uint8Array, o: PipePublishOptions = {}): Promise<PubAckLike> {
    if (this.closedReason !== undefined) return Promise.reject(new Error(this.closedReason));
    return new Promise<PubAckLike>((resolve, reject) => {
      const id = this.nextId++;
      let h;
      if (o.msgID !== undefined || o.expectStream !== undefined) {
        h = headers();
        if (o.msgID !== undefined) h.set("Nats-Msg-Id", o.msgID);
        if (o.expectStream !== undefined) h.set("Nats-Expected-Stream", o.expectStream);
      }
      this.pending.set(id, { subject, sentAt: performance.now(), resolve, reject });
      try {
        const data = typeof payload === "string" ? encoder.encode(payload) : payload;
        this.nc.publish(subject, data, h ? { reply: `${this.inbox}.${id}`, headers: h } : { reply: `${this.inbox}.${id}` });
      } catch (e) {
        this.pending.delete(id);
        reject(e as Error);
      }
    });
  }

  close(reason = "the publisher is closed"): void {
    if (this.closedReason !== undefined) return;
    this.closedReason = reason;
    clearInterval(this.sweeper);
    this.sub.unsubscribe();
    this.failAll(reason);
  }

  private onReply(id: number, msg: Msg): void {
    const p = this.pending.get(id);
    if (p === undefined) return; // timed out already
    this.pending.delete(id);
    try {
      p.resolve(parsePubAck(msg, p.subject));
    } catch (e) {
      p.reject(e as Error);
    }
  }

  private sweep(): void {
    const deadline = performance.now() - this.timeoutMs;
    for (const [id, p] of this.pending) {
      if (p.sentAt > deadline) break; // insertion order = send order
      this.pending.delete(id);
      // "timeout" in the message: retried as a transient JetStream failure (state/backends/jetstream-retry.ts).
      p.reject(new Error(`publish to ${p.subject}: timeout after ${this.timeoutMs} ms`));
    }
  }

  private failAll(reason: string): void {
    for (const p of this.pending.values()) p.reject(new Error(reason));
    this.pending.clear();
  }
}

function parsePubAck(msg: Msg, subject: string): PubAckLike {
  const h = msg.headers;
  if (h && h.code === 503) throw new Error(`publish to ${subject}: no responders`);
  if (h && h.code !== 0) throw new Error(`publish to ${subject} failed: ${h.code} ${h.description}`);
  const ack = JSON.parse(decoder.decode(msg.data)) as { stream?: string; seq?: number; duplicate?: boolean; error?: { code?: number; err_code?: number; description?: string } };
  if (ack.error) throw new Error(`${ack.error.description ?? JSON.stringify(ack.error)} (${ack.error.err_code ?? ack.error.code ?? "?"})`);
  return { stream: ack.stream ?? "", seq: ack.seq ?? 0, duplicate: ack.duplicate === true };
}
