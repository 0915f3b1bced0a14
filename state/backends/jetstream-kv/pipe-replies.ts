// What the KV pipe (pipe.ts) makes of JetStream's replies: a value read, a write acknowledged, a message
// deleted; `Unavailable` when the stream cannot answer now (no leader, no responder) and the request may
// be sent again.

import type { Msg } from "@nats-io/transport-node";
import { StateAccessError } from "../../errors.ts";
import { replyFields } from "./reply-headers.ts";

const decoder = new TextDecoder();

/** JetStream cannot answer for the stream now (no leader, no responder): the request may be sent again. */
export class Unavailable extends StateAccessError {}

/** A write's expectation refused (the server's JSStreamWrongLastSequenceErrF): the key changed meanwhile. */
export class WrongLastSequence extends StateAccessError {}
const WRONG_LAST_SEQUENCE = 10071;

/** A key's message as read: its value (undefined: absent, or a delete or purge marker) and its stream sequence (0: no message). */
export class StoredMessage {
  constructor(readonly data: Uint8Array | undefined, readonly seq: number) {}
}

const NO_MESSAGE = new StoredMessage(undefined, 0);

/** A direct get's answer: the message in the reply (its sequence in `Nats-Sequence`), or 404: no such key. */
export function parseGet(msg: Msg, stream: string): StoredMessage {
  // Its few fields off the raw headers (reply-headers.ts): decoding them whole cost more than the rest.
  const { code, seq, op } = replyFields(msg);
  if (code !== 0) {
    if (code === 404) return NO_MESSAGE;
    if (code === 503) throw new Unavailable(`no JetStream responder for stream ${stream} (is JetStream enabled and the bucket there?)`);
    throw new StateAccessError(`direct get from ${stream} failed: ${code} ${msg.headers?.description ?? ""}`);
  }
  return new StoredMessage(op === "DEL" || op === "PURGE" ? undefined : msg.data, seq);
}

/** A `STREAM.MSG.GET` answer: `{ message: { data, hdrs } }` (base64) or `{ error }` (404: no such key). */
export function parseLeaderGet(msg: Msg, stream: string): StoredMessage {
  const h = msg.headers;
  if (h && h.code === 503) throw new Unavailable(`no JetStream responder for stream ${stream} (is JetStream enabled and the bucket there?)`);
  const r = JSON.parse(decoder.decode(msg.data)) as { message?: { data?: string; hdrs?: string; seq?: number }; error?: { code?: number; description?: string } };
  if (r.error) {
    if (r.error.code === 404) return NO_MESSAGE;
    if (r.error.code === 503) throw new Unavailable(`reading from ${stream} failed: ${r.error.description ?? "unavailable"} (503)`);
    throw new StateAccessError(`reading from ${stream} failed: ${r.error.description ?? JSON.stringify(r.error)} (${r.error.code ?? "?"})`);
  }
  const seq = r.message?.seq ?? 0;
  // A delete or purge marker carries its KV-Operation header; a value has none.
  if (r.message?.hdrs && /KV-Operation:\s*(DEL|PURGE)/i.test(Buffer.from(r.message.hdrs, "base64").toString("latin1"))) return new StoredMessage(undefined, seq);
  return new StoredMessage(r.message?.data ? Buffer.from(r.message.data, "base64") : new Uint8Array(0), seq);
}

export function parseAck(msg: Msg, stream: string): number {
  const h = msg.headers;
  if (h && h.code !== 0) {
    if (h.code === 503) throw new Unavailable(`no JetStream responder for stream ${stream}`);
    throw new StateAccessError(`write to ${stream} failed: ${h.code} ${h.description}`);
  }
  const seq = pubAckSeq(msg.data);
  if (seq >= 0) return seq;
  // A PubAck ({ seq }) for puts, a purge response ({ success, purged }) for erasures.
  const ack = JSON.parse(decoder.decode(msg.data)) as { seq?: number; error?: { code?: number; err_code?: number; description?: string } };
  if (ack.error?.err_code === WRONG_LAST_SEQUENCE) throw new WrongLastSequence(`write to ${stream} refused: ${ack.error.description ?? "wrong last sequence"}`);
  if (ack.error?.code === 503) throw new Unavailable(`write to ${stream} failed: ${ack.error.description ?? "unavailable"} (503)`);
  if (ack.error) throw new StateAccessError(`write to ${stream} failed: ${ack.error.description ?? JSON.stringify(ack.error)} (${ack.error.code ?? "?"})`);
  return ack.seq ?? 0;
}

const STREAM_FIELD = Array.from('{"stream":', (c) => c.charCodeAt(0));
const SEQ_FIELD = Array.from('"seq":', (c) => c.charCodeAt(0));

/**
 * The sequence of a successful PubAck as the server writes it, `{"stream":"KV_b", "seq":42}` (a failure
 * starts with "error"), read off its bytes: most replies of a flush are these, and decoding and parsing
 * each as JSON cost more than the rest of its handling. -1 for anything else (parsed as JSON then).
 */
export function pubAckSeq(d: Uint8Array): number {
  const n = d.length;
  if (n < STREAM_FIELD.length + SEQ_FIELD.length + 2 || d[n - 1] !== 0x7d) return -1;
  for (let i = 0; i < STREAM_FIELD.length; i++) if (d[i] !== STREAM_FIELD[i]) return -1;
  let i = n - 2;
  let seq = 0;
  let scale = 1;
  for (; i >= 0 && d[i]! >= 0x30 && d[i]! <= 0x39; i--) {
    seq += (d[i]! - 0x30) * scale;
    scale *= 10;
  }
  if (scale === 1 || scale > 1e15) return -1;
  for (let j = SEQ_FIELD.length - 1; j >= 0; j--, i--) if (d[i] !== SEQ_FIELD[j]) return -1;
  return seq;
}

/** A failed message delete (the 2.9 server's JSStreamMsgDeleteFailedF); "no message found" is one cause. */
const MSG_DELETE_FAILED = 10057;

export function parseDeleted(msg: Msg, stream: string): boolean {
  const h = msg.headers;
  if (h && h.code === 503) throw new Unavailable(`no JetStream responder for stream ${stream}`);
  if (h && h.code !== 0) throw new StateAccessError(`deleting from ${stream} failed: ${h.code} ${h.description}`);
  const r = JSON.parse(decoder.decode(msg.data)) as { success?: boolean; error?: { err_code?: number; code?: number; description?: string } };
  if (r.error) {
    if (r.error.err_code === MSG_DELETE_FAILED && r.error.description === "no message found") return false;
    if (r.error.code === 503) throw new Unavailable(`deleting from ${stream} failed: ${r.error.description ?? "unavailable"} (503)`);
    throw new StateAccessError(`deleting from ${stream} failed: ${r.error.description ?? JSON.stringify(r.error)} (${r.error.code ?? "?"})`);
  }
  return r.success === true;
}
