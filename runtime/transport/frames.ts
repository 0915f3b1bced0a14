// What travels on a channel subject: frames of records, and in-band control (watermarks, watermark
// status, RecordAttributes, checkpoint barriers, end-of-input) kept in order with the records.
// Encoded as JSON: JSON.parse of a 500-record frame is the cheapest decoder Node has (measured: ~2.5M records/s with decoding); records
// that are objects of one shape travel as columns (record-columns.ts), which it parses twice as fast.
import { fromColumns, toColumns, type RecordBuilder, type WireColumn } from "./record-columns.ts";
import { lostInJson } from "../core/json-data.ts";

export const MAX_WATERMARK = Number.MAX_SAFE_INTEGER;
export const MIN_WATERMARK = Number.MIN_SAFE_INTEGER;

import type { CheckpointBarrier } from "../contracts/records.ts";
export type { CheckpointBarrier, RecordAttributes } from "../contracts/records.ts";

export const FrameKind = {
  Records: "r",
  Watermark: "w",
  Status: "s",
  Attributes: "a",
  Barrier: "b",
  EndOfInput: "e",
} as const;
export type FrameKind = (typeof FrameKind)[keyof typeof FrameKind];

export type Frame =
  | { readonly k: "r"; readonly v: unknown[]; readonly t?: Array<number | null> | undefined }
  | { readonly k: "w"; readonly w: number }
  | { readonly k: "s"; readonly idle: boolean }
  | { readonly k: "a"; readonly backlog: boolean }
  | { readonly k: "b"; readonly b: CheckpointBarrier }
  | { readonly k: "e" };

/**
 * A frame as published: `q` numbers the frames of one channel 1, 2, 3, ... so the consumer sees a frame
 * the server or the client dropped (core NATS keeps nothing across a disconnect) as a gap.
 */
export type SequencedFrame = Frame & { readonly q?: number | undefined };

/**
 * After a reconnect, a producer's probe: the number of the last frame it published on the channel, sent
 * outside the numbering and without credit (a channel whose in-flight frames were all lost has none left).
 * Arriving after every frame published before it (one connection's messages keep their order), it tells
 * the consumer whether any of them was lost, even on a channel that has nothing more to send.
 */
export interface ProbeFrame { readonly k: "p"; readonly last: number }

export function encodeProbe(last: number): string {
  return JSON.stringify({ k: "p", last } satisfies ProbeFrame);
}

/** Whether `data` is a probe, without decoding it: `{"k":"p"` (numbered frames start `{"q":`). */
export function isProbe(data: Uint8Array): boolean {
  return data[2] === 0x6b && data[6] === 0x70;
}

/** Puts sequence number `seq` into an encoded frame (every encoding is a JSON object). */
export function withSequence(payload: string, seq: number): string {
  return `{"q":${seq},${payload.slice(1)}`;
}

export function encodeRecords(values: unknown[], timestamps: Array<number | undefined> | undefined): string {
  // Bytes (a `format: "bytes"` source's records) go as base64: JSON would make a Buffer {type, data} and
  // a Uint8Array an object of indices, and they would arrive as neither.
  if (values[0] instanceof Uint8Array && values.every((v) => v instanceof Uint8Array)) {
    return JSON.stringify({ k: "r", b: (values as Uint8Array[]).map((v) => Buffer.from(v.buffer, v.byteOffset, v.byteLength).toString("base64")), t: timestamps });
  }
  const columns = toColumns(values);
  const json = columns !== undefined ? JSON.stringify({ k: "r", f: columns.fields, c: columns.columns, t: timestamps }) : JSON.stringify({ k: "r", v: values, t: timestamps });
  // A Map or a Set would arrive as {}: refused (the writer then sends the record to the dead letters).
  if (json.includes("{}")) {
    for (const v of values) { const at = lostInJson(v); if (at !== undefined) throw new TypeError(`${at.replace(/^the value/, "the record")}; use plain objects and arrays`); }
  }
  return json;
}

export function encodeControl(frame: Exclude<Frame, { k: "r" }>): string {
  return JSON.stringify(frame);
}

const decoder = new TextDecoder();

/** `records`: the consumer's builder of records from columns (RecordBuilder), else they are built field by field. */
export function decodeFrame(data: Uint8Array, records?: RecordBuilder): SequencedFrame | ProbeFrame {
  const frame = JSON.parse(decoder.decode(data)) as SequencedFrame | ColumnFrame | BytesFrame | ProbeFrame;
  if (frame.k === "r" && "c" in frame) return { k: "r", v: records !== undefined ? records.records(frame.f, frame.c) : fromColumns(frame.f, frame.c), t: frame.t, q: frame.q };
  if (frame.k === "r" && "b" in frame) return { k: "r", v: frame.b.map((b) => Buffer.from(b, "base64")), t: frame.t, q: frame.q };
  return frame;
}

/** A records frame on the wire when its records are bytes (base64). */
interface BytesFrame { readonly k: "r"; readonly b: string[]; readonly t?: Array<number | null>; readonly q?: number }

/** A records frame on the wire when its records went as columns. */
interface ColumnFrame { readonly k: "r"; readonly f: string[]; readonly c: WireColumn[]; readonly t?: Array<number | null>; readonly q?: number }
