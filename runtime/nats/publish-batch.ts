// Many JetStream publishes at once (an exactly-once sink committing a checkpoint's output): each message
// keeps its own id and its own ack, but a burst of them is written as one block of protocol text, encoded
// once. Through `nc.publish` every message costs three string encodings, subject checks by regular
// expression, a header object and a promise; at two output messages per input record that was the
// largest share of the demo job's CPU (a profile with `node --cpu-prof`). The block is handed to the
// client's outbound buffer (`sendCommand`, not part of its typed API); a client without it gets the same
// publishes one by one.

import type { NatsConnection } from "@nats-io/transport-node";
import { headerText, type JetStreamPublishPipe, type PipePublishOptions, type PubAckLike, type Settle } from "./publish-pipe.ts";

export interface BatchOptions {
  readonly expectStream?: string;
  /** Unacknowledged publishes at most. */
  readonly maxInFlight: number;
  /** A publish that failed (an error ack, a timeout): retry it, resolving once it is stored, or reject. */
  readonly retry: (subject: string, payload: string | Uint8Array, msgID: string | undefined, e: Error) => Promise<unknown>;
}

type RawSend = (block: Uint8Array, messages: number) => void;

const encoder = new TextEncoder();
const WHITESPACE = /\s/;

/**
 * Publishes `messages` ([subject, payload]; `idOf(i)` the id of the i-th) with at most `maxInFlight`
 * unacknowledged, resuming in bursts once a quarter of the window is acknowledged. Resolves when every
 * one is stored; after a failure sends nothing more and rejects with it once the rest settled.
 */
export function publishBatch(nc: NatsConnection, pipe: JetStreamPublishPipe, messages: ReadonlyArray<readonly [subject: string, payload: string | Uint8Array]>, idOf: ((i: number) => string) | undefined, o: BatchOptions): Promise<void> {
  const raw = rawSender(nc);
  const max = nc.info?.max_payload ?? 1024 * 1024;
  const resumeAt = Math.max(0, o.maxInFlight - Math.max(1, Math.floor(o.maxInFlight / 4)));
  const expect = o.expectStream !== undefined ? { expectStream: o.expectStream } : {};
  return new Promise<void>((resolve, reject) => {
    let next = 0;
    let inFlight = 0;
    let retrying = 0;
    let failure: Error | undefined;
    const fail = (e: unknown) => { failure ??= e instanceof Error ? e : new Error(String(e)); };
    const finishIfDone = () => {
      if (inFlight > 0 || retrying > 0) return;
      if (failure) reject(failure);
      else if (next >= messages.length) resolve();
    };
    const settle: Settle = {
      successOnly: true,
      resolve: (_ack: PubAckLike) => { inFlight--; afterSettle(); },
      reject: (e: Error, index: number) => {
        inFlight--;
        if (failure === undefined) {
          retrying++;
          const [subject, payload] = messages[index]!;
          o.retry(subject, payload, idOf?.(index), e).then(() => { retrying--; afterSettle(); }, (err: unknown) => { retrying--; fail(err); afterSettle(); });
        }
        afterSettle();
      },
    };
    const afterSettle = () => {
      if (failure === undefined && next < messages.length && inFlight <= resumeAt) pump();
      else finishIfDone();
    };
    const pump = () => {
      const end = Math.min(messages.length, next + o.maxInFlight - inFlight);
      let block = "";
      let count = 0;
      try {
        if (nc.isClosed()) throw new Error("the NATS connection is closed");
        for (; next < end; next++) {
          const [subject, payload] = messages[next]!;
          const msgID = idOf?.(next);
          const opts: PipePublishOptions = msgID !== undefined ? { msgID, ...expect } : expect;
          if (raw === undefined || typeof payload !== "string") {
            // A bytes payload goes through the client, after the text block so far (order kept).
            if (count > 0) raw!(encoder.encode(block), count);
            block = "";
            count = 0;
            const i = next;
            inFlight++;
            pipe.publish(subject, payload, opts).then((a) => settle.resolve(a, i), (e: Error) => settle.reject(e, i));
            continue;
          }
          const header = opts.msgID !== undefined || opts.expectStream !== undefined ? headerText(opts) : undefined;
          if (subject.length === 0 || WHITESPACE.test(subject)) throw new Error(`publish to ${JSON.stringify(subject)}: not a subject`);
          const hlen = header === undefined ? 0 : Buffer.byteLength(header);
          const len = hlen + Buffer.byteLength(payload);
          if (len > max) throw new Error(`publish to ${subject}: ${len} bytes exceed the server's max payload (${max})`);
          const reply = pipe.track(subject, next, settle);
          inFlight++;
          count++;
          block += header === undefined ? `PUB ${subject} ${reply} ${len}\r\n${payload}\r\n` : `HPUB ${subject} ${reply} ${hlen} ${len}\r\n${header}${payload}\r\n`;
        }
      } catch (e) {
        fail(e);
      }
      if (count > 0) raw!(encoder.encode(block), count);
      finishIfDone();
    };
    pump();
  });
}

/** The client's outbound buffer, if this client version has the hook. */
function rawSender(nc: NatsConnection): RawSend | undefined {
  const protocol = (nc as unknown as { protocol?: { sendCommand?: unknown; outMsgs?: number; outBytes?: number } }).protocol;
  if (protocol === undefined || typeof protocol.sendCommand !== "function") return undefined;
  const send = protocol.sendCommand.bind(protocol) as (cmd: Uint8Array) => void;
  return (block, messages) => {
    send(block);
    // The client's own counters (nc.stats()) as if published one by one.
    if (typeof protocol.outMsgs === "number") protocol.outMsgs += messages;
    if (typeof protocol.outBytes === "number") protocol.outBytes += block.length;
  };
}
