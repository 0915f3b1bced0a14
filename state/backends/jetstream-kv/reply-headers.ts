// The few header fields a direct get's reply is read for (its status, `Nats-Sequence`, `KV-Operation`),
// read off the raw header block. nats.js decodes a message's headers whole on first access, each name
// through its canonical form char by char: ~2.4 KB of garbage a reply, the largest allocation of a job
// reading cold KV state (`HEAP=1 PROFILE=… bench/prof-cold.ts`). The raw block is what nats.js holds
// (MsgImpl's `_rdata` and `_msg.hdr`); when a message does not look like that, callers use `msg.headers`.

import type { Msg } from "@nats-io/transport-node";

export interface ReplyFields {
  /** The status line's code: 0 when there is none (a message), e.g. 404 or 503 otherwise. */
  readonly code: number;
  /** `Nats-Sequence`, 0 when absent. */
  readonly seq: number;
  /** `KV-Operation` ("DEL", "PURGE"), undefined when absent. */
  readonly op: string | undefined;
}

const NO_HEADERS: ReplyFields = { code: 0, seq: 0, op: undefined };
const CR = 0x0d;
const LF = 0x0a;
const COLON = 0x3a;
const SPACE = 0x20;
const TAB = 0x09;
const PREFIX = Array.from("NATS/1.0", (c) => c.charCodeAt(0));
const SEQUENCE = Array.from("nats-sequence", (c) => c.charCodeAt(0));
const OPERATION = Array.from("kv-operation", (c) => c.charCodeAt(0));

/** The message's raw header block as nats.js holds it; null: no headers; undefined: not known here. */
export function rawHeaderBlock(msg: Msg): Uint8Array | null | undefined {
  const m = msg as unknown as { _rdata?: unknown; _msg?: { hdr?: unknown } };
  const hdr = m._msg?.hdr;
  if (!(m._rdata instanceof Uint8Array) || typeof hdr !== "number" || hdr > m._rdata.length) return undefined;
  return hdr > 0 ? m._rdata.subarray(0, hdr) : null;
}

/** The fields of a reply's headers, from the raw block when nats.js has it, else from `msg.headers`. */
export function replyFields(msg: Msg): ReplyFields {
  const block = rawHeaderBlock(msg);
  if (block === null) return NO_HEADERS;
  const fast = block === undefined ? undefined : parseHeaderBlock(block);
  if (fast !== undefined) return fast;
  const h = msg.headers;
  if (h === undefined) return NO_HEADERS;
  return { code: h.code, seq: Number(h.get("Nats-Sequence") || 0), op: h.get("KV-Operation") || undefined };
}

/**
 * `NATS/1.0[ <code>[ <description>]]\r\n(<name>: <value>\r\n)*\r\n`, names compared without case, values
 * trimmed. Undefined when the block does not start so (the caller decodes it the library's way).
 */
export function parseHeaderBlock(b: Uint8Array): ReplyFields | undefined {
  for (let i = 0; i < PREFIX.length; i++) if (b[i] !== PREFIX[i]) return undefined;
  let i = PREFIX.length;
  let code = 0;
  while (i < b.length && b[i] === SPACE) i++;
  while (i < b.length && b[i]! >= 0x30 && b[i]! <= 0x39) code = code * 10 + (b[i++]! - 0x30);
  let seq = 0;
  let op: string | undefined;
  for (i = lineEnd(b, i); i < b.length; i = lineEnd(b, i)) {
    const start = i;
    let colon = -1;
    for (; i < b.length && b[i] !== CR && b[i] !== LF; i++) if (colon < 0 && b[i] === COLON) colon = i;
    if (colon < 0) continue;
    let v = colon + 1;
    let end = i;
    while (v < end && (b[v] === SPACE || b[v] === TAB)) v++;
    while (end > v && (b[end - 1] === SPACE || b[end - 1] === TAB)) end--;
    if (nameIs(b, start, colon, SEQUENCE)) {
      let n = 0;
      for (let j = v; j < end; j++) {
        const d = b[j]! - 0x30;
        if (d < 0 || d > 9) return undefined;
        n = n * 10 + d;
      }
      seq = n;
    } else if (nameIs(b, start, colon, OPERATION)) {
      op = String.fromCharCode(...b.subarray(v, end));
    }
  }
  return { code, seq, op };
}

/** The index after the line break at or after `i`. */
function lineEnd(b: Uint8Array, i: number): number {
  while (i < b.length && b[i] !== LF) i++;
  return i + 1;
}

/** Whether b[start, end) is `name` (lower case) in any case. */
function nameIs(b: Uint8Array, start: number, end: number, name: readonly number[]): boolean {
  if (end - start !== name.length) return false;
  for (let j = 0; j < name.length; j++) if ((b[start + j]! | 0x20) !== name[j]) return false;
  return true;
}
