// The KV pipe's (pipe.ts) requests: one in flight or waiting, the lane of its kind, and the header of a
// conditional put.

import { MsgHdrsImpl, type Msg, type MsgHdrs } from "@nats-io/transport-node";

/** Requests of one kind waiting for a free slot, in order. */
export class Lane {
  readonly waiting: Pending[] = [];
  head = 0;
  inflight = 0;
  constructor(readonly window: number) {}
  get queued(): number { return this.waiting.length - this.head; }
  shift(): Pending {
    const p = this.waiting[this.head]!;
    this.waiting[this.head++] = undefined as unknown as Pending;
    if (this.head > 1024 && this.head * 2 > this.waiting.length) {
      this.waiting.splice(0, this.head);
      this.head = 0;
    }
    return p;
  }
}

export interface Pending {
  id: number;
  readonly subject: string;
  readonly payload: Uint8Array;
  readonly headers: MsgHdrs | undefined;
  readonly kind: "get" | "write";
  /** Turns the reply into the request's result (throws to reject it). */
  readonly parse: (msg: Msg, stream: string) => unknown;
  sentAt: number;
  /** When it was first sent (0: not yet), and the pause before its next retry. */
  firstSentAt: number;
  retryDelayMs: number;
  /** A conditional put's expected sequence of the key's last message (0: none), else undefined. */
  readonly expect: number | undefined;
  /** Passed back to resolve and reject (putThen's caller's object; unused by promise requests). */
  readonly tag: unknown;
  readonly resolve: (v: unknown, tag: unknown) => void;
  readonly reject: (e: unknown, tag: unknown) => void;
}

const EXPECTED_SEQUENCE = "Nats-Expected-Last-Subject-Sequence";

/**
 * The header of a conditional put, encoded once, at construction: nats.js's `headers()` checks each name
 * and value with regular expressions, and its `encode()`, at each publish, builds the text and runs it
 * through TextEncoder (~1.2 µs for a short string on Node 20, against ~0.1 µs for Buffer.from). Paired runs
 * of bench/prof-backlog.ts sorted 1000000 500000 (a put per key, each conditional): see docs/state.md.
 */
class ExpectedSequenceHeader extends MsgHdrsImpl {
  private readonly bytes: Uint8Array;
  constructor(seq: number) {
    super();
    const value = String(seq);
    this.headers.set(EXPECTED_SEQUENCE, [value]);
    // What MsgHdrsImpl.toString() gives for this one header.
    this.bytes = Buffer.from(`NATS/1.0\r\n${EXPECTED_SEQUENCE}: ${value}\r\n\r\n`, "latin1");
  }
  override encode(): Uint8Array { return this.bytes; }
}

/** The header of a conditional put (`expect`: the sequence the key's last message must have, 0: none). */
export function expectation(expect: number | undefined): MsgHdrs | undefined {
  return expect === undefined ? undefined : new ExpectedSequenceHeader(expect);
}
