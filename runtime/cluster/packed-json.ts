// The worker protocol's messages (commands, reports, heartbeats) as JSON deflated with a preset
// dictionary: the field names and values every message repeats. A message of a few hundred bytes barely
// shrinks by itself (deflate finds nothing to repeat inside it); with the dictionary a status report
// went from ~560 to ~150 bytes and a keyed subtask's checkpoint acknowledgement from ~470 to ~290
// (`npm run bench workers` counts the control plane's bytes against the data's).
//
// zlib's preset dictionary: RFC 1950 §2.2 (FDICT); deflate may copy from it as from earlier input, and
// strings near its end are the cheapest to refer to, so the most frequent ones come last. A message
// starts with the dictionary's version (one byte instead of zlib's 10 of header and checksums): every
// worker of a job must run the same weir version, and one with another dictionary is refused in one
// line rather than inflated to garbage.

import { crc32, deflateRawSync, inflateRawSync } from "node:zlib";
import { ErrorCode, WeirError } from "../core/errors.ts";

/** Message templates with their values left out, rarest first. */
const TEMPLATES = [
  '{"kind":"deploy","leader":"","subtasks":[""],"restoreId":null,"lineage":"","parallelism":null,"clockMs":null}',
  '{"kind":"run","sources":true}{"kind":"stop-sources"}{"kind":"release"}{"kind":"cancel"}{"kind":"regrant"}{"kind":"refuse","reason":""}{"kind":"advance-clock","toMs":}',
  '{"kind":"fail","subtask":"","reason":""}{"kind":"failed","error":""}{"kind":"finished"}{"kind":"input-finished"}{"kind":"dirty-budget"}{"kind":"reconnected"}',
  '{"kind":"decline","reason":""}{"kind":"abort","checkpointId":}',
  '"windowsFired":0,"lateRecordsDropped":0,"openWindows":0,"committedRecords":0,"pendingMessages":0,"error":"","Source: jetstream":{"pendingMessages":0}',
  '"operators":{"KeyedProcess":{"recordsIn":0,"eventTimers":0,"processingTimers":0,"restoredEventTimers":0,"restoredProcessingTimers":0,"timersFired":0,"sortedRecords":0,"sortSpills":0,"backlogBuffered":0,"inFlightRecords":0,"activeBufferSize":0,"blockingBufferSize":0,"blockedKeys":0,"batchesSent":0,"meanBatchSize":0,"batchedRequests":0,"maxInFlightSeen":32,"admittedInFlight":32,"pendingWatermarks":0,"stalled":0,"cacheEntries":0,"cacheBytes":0,"cacheHits":0,"cacheMisses":0,"dirtyEntries":0,"dirtyBytes":0,"cacheEvictions":0,"stateFlushes":0,"stateRemoteReads":0,"stateRemoteWrites":0,"stateWritesFenced":0},"Sink: jetstream":{"committedRecords":0,"recordsOut":0}}}',
  '{"kind":"status","epoch":0,"worker":"","subtasks":[{"id":"","vertex":0,"name":"Source: jetstream","index":0,"state":"running.streaming","recordsIn":0,"recordsOut":0,"watermark":null,"watermarkOut":null,"backpressuredMs":0,"idleMs":0,"busyMs":0,"queuedFrames":0,"pendingFrames":0,"deadLetters":0,"isBacklog":false,"operators":{}}',
  '"keyed":{"operators":[""],"snapshots":[{"checkpointId":0,"kind":"full","keyGroupRange":{"start":0,"end":0},"changelog":{"stream":"","firstSeq":0,"lastSeq":0,"owner":"","messages":[[0,0,-32],[1,1,0]]},"entries":0,"bytes":0}]}',
  '{"kind":"ack","epoch":0,"worker":"","checkpointId":0,"snapshots":[{"vertexUid":"","index":0,"parallelism":0,"operators":{"":{"stream":"","offsets":{"":0},"created":"2026-01-01T00:00:00.000000000Z"},"out":{"staged":[{"checkpointId":0,"subtask":0,"firstSeq":0,"lastSeq":0,"records":0}]}},"ackedAtMs":0,"alignmentMs":0,"stateChanged":{"entries":0,"bytes":0}}]}',
  '{"id":"","host":"","pid":0,"startedAt":"2026-01-01T00:00:00.000Z","epoch":0,"subtasks":["#0","#1"],"identity":{"graph":"","settings":{"parallelism":"auto","maxParallelism":128,"stateBackend":"jetstream-kv","mode":"automatic","checkpointIntervalMs":0,"clock":"system"}},"lagMs":0,"leaving":true}',
  '{"kind":"trigger","epoch":0,"subtasks":[""],"barrier":{"id":0,"timestamp":0,"kind":"checkpoint"},"pause":false}{"kind":"complete","epoch":0,"checkpointId":0}',
];

const DICTIONARY = Buffer.from(TEMPLATES.join(""));
/**
 * The first byte of every packed message: one up with each change of TEMPLATES or of the messages' shapes
 * (0x7b, "{", is plain JSON's). 2: a worker's acknowledgements and triggers per checkpoint, not per subtask.
 * 4 (3 is PACKED_AGAINST): the deploy command's lineage.
 */
const PACKED_VERSION = 0x04;

/**
 * The first byte of a message packed against a reference (packJsonAgainst): the dictionary is TEMPLATES
 * followed by the JSON of an earlier message that sender and receiver both hold. Consecutive messages of
 * one kind differ in a few numbers, so a status report of ~150–210 bytes packs to ~80–130, a checkpoint
 * acknowledgement of ~220–280 to ~80–130, a heartbeat of ~100 to ~15. Then come the CRC-32 of the
 * reference (which one the receiver must use) and of the message's JSON (a receiver holding other bytes
 * under that CRC gets an error, never another message).
 */
const PACKED_AGAINST = 0x03;
const HEADER = 9;

/** A reference the receiver does not hold (it joined later, or missed the message): the sender must send one in full. */
export class MissingReferenceError extends WeirError {
  constructor(what: string, readonly reference: number) {
    super(ErrorCode.Transport, `${what}: packed against a message not held here (CRC ${reference.toString(16)})`);
  }
}

/** `value` as deflated JSON (the protocol's messages: plain data, no undefined at the top). */
export function packJson(value: unknown): Uint8Array {
  return packText(Buffer.from(JSON.stringify(value)));
}

/** A value packed, and its JSON: what the receiver unpacks it to, to keep as a later message's reference. */
export interface PackedMessage {
  readonly data: Uint8Array;
  readonly text: Uint8Array;
}

/** `value` packed against `reference` (an earlier message's `text` the receiver holds), or alone when there is none. */
export function packJsonAgainst(value: unknown, reference: Uint8Array | undefined): PackedMessage {
  const text = Buffer.from(JSON.stringify(value));
  if (reference === undefined) return { data: packText(text), text };
  const body = deflateRawSync(text, { dictionary: Buffer.concat([DICTIONARY, reference]) });
  const out = Buffer.allocUnsafe(body.length + HEADER);
  out[0] = PACKED_AGAINST;
  out.writeUInt32BE(crc32(reference), 1);
  out.writeUInt32BE(crc32(text), 5);
  body.copy(out, HEADER);
  return { data: out, text };
}

/** Whether `data` was packed against a reference (its own text is then no reference a sender would use for heartbeats). */
export function isPackedAgainst(data: Uint8Array): boolean {
  return data[0] === PACKED_AGAINST;
}

/** Earlier messages a receiver keeps as references, by CRC-32; the oldest go beyond `capacity`. */
export class PackedReferences {
  private readonly byCrc = new Map<number, Uint8Array>();
  constructor(private readonly capacity: number) {}
  add(text: Uint8Array): void {
    const crc = crc32(text);
    this.byCrc.delete(crc);
    this.byCrc.set(crc, text);
    if (this.byCrc.size > this.capacity) this.byCrc.delete(this.byCrc.keys().next().value!);
  }
  get(crc: number): Uint8Array | undefined { return this.byCrc.get(crc); }
}

function packText(text: Buffer): Uint8Array {
  const body = deflateRawSync(text, { dictionary: DICTIONARY });
  const out = Buffer.allocUnsafe(body.length + 1);
  out[0] = PACKED_VERSION;
  body.copy(out, 1);
  return out;
}

/** A packed message's value; a body that is not one (another weir version, another sender) throws one line naming `what`. */
export function unpackJson(data: Uint8Array, what: string): unknown {
  return unpackJsonText(data, what).value;
}

/**
 * A packed message's value and JSON text. One packed against a reference needs `references` holding it:
 * else a MissingReferenceError.
 */
export function unpackJsonText(data: Uint8Array, what: string, references?: PackedReferences): { value: unknown; text: Uint8Array } {
  const against = data[0] === PACKED_AGAINST && data.length > HEADER;
  if (data[0] !== PACKED_VERSION && !against) {
    throw new WeirError(ErrorCode.Transport, `${what}: not a packed message of this weir version (${data.length === 0 ? "empty" : data[0] === 0x7b ? "plain JSON" : `version byte ${data[0]}`})`);
  }
  const header = Buffer.from(data.buffer, data.byteOffset, data.byteLength);
  let dictionary = DICTIONARY;
  if (against) {
    const crc = header.readUInt32BE(1);
    const reference = references?.get(crc);
    if (reference === undefined) throw new MissingReferenceError(what, crc);
    dictionary = Buffer.concat([DICTIONARY, reference]);
  }
  let text: Buffer;
  try {
    text = inflateRawSync(data.subarray(against ? HEADER : 1), { dictionary });
  } catch (e) {
    throw new WeirError(ErrorCode.Transport, `${what}: not a packed message of this weir version (${(e as Error).message})`, { cause: e });
  }
  if (against && crc32(text) !== header.readUInt32BE(5)) {
    throw new WeirError(ErrorCode.Transport, `${what}: packed against other bytes than those held under its reference's CRC (it inflates to another message)`);
  }
  try {
    return { value: JSON.parse(text.toString("utf8")), text };
  } catch (e) {
    throw new WeirError(ErrorCode.Transport, `${what}: not a packed message of this weir version (it inflates to no JSON)`, { cause: e });
  }
}
