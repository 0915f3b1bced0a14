// A sink's payload for one record, or a dead letter: a record nested too deep for JSON.stringify
// (a RangeError past ~4,000 levels), cyclic, or larger than the server's max payload would otherwise fail
// the sink on every replay of the same input. The try costs nothing on the record path; the size check
// measures bytes only for payloads that could be over (a JSON string's length × 3 bounds its UTF-8 bytes).
// A bytes record (a Uint8Array, as `format: "bytes"` sources give) is its own payload, as Kafka's
// ByteArraySerializer writes one: its JSON would be an object of numbered bytes.

import type { ConnectorContext } from "../contracts/connectors.ts";
import { preview } from "../core/preview.ts";

const PREVIEW_CHARS = 64 * 1024;

/** A record as a sink sends it: JSON text, or the bytes of a bytes record. */
export type SinkPayload = string | Uint8Array;

/** Returns the payload, or undefined after dead-lettering the record (origin: the sink operator). */
export function sinkPayload(ctx: ConnectorContext, value: unknown, maxBytes?: number): SinkPayload | undefined {
  if (value instanceof Uint8Array) return withinLimit(ctx, value, value.byteLength, maxBytes) ? value : undefined;
  let payload: string | undefined;
  try {
    payload = JSON.stringify(value);
  } catch (e) {
    rejectRecord(ctx, value, unencodable(e));
    return undefined;
  }
  if (payload === undefined) return "null";
  return payload.length * 3 <= Math.min(maxBytes ?? Infinity, serverMax(ctx)) || withinLimit(ctx, value, Buffer.byteLength(payload), maxBytes) ? payload : undefined;
}

const serverMax = (ctx: ConnectorContext): number => ctx.nc.info?.max_payload ?? 1024 * 1024;

/** Whether `bytes` fit the server's max payload and the target's `maxBytes`; else the record is a dead letter. */
function withinLimit(ctx: ConnectorContext, value: unknown, bytes: number, maxBytes: number | undefined): boolean {
  const server = serverMax(ctx);
  const max = maxBytes !== undefined && maxBytes < server ? maxBytes : server;
  if (bytes <= max) return true;
  rejectRecord(ctx, value, `a record of ${bytes} bytes exceeds ${max === server ? `the server's max payload (${max})` : `the target stream's max_msg_size (${max})`}`);
  return false;
}

/** The reason of a record JSON.stringify threw on (cyclic, nested too deep). */
export function unencodable(e: unknown): string {
  return `record cannot be encoded by the sink: ${e instanceof Error ? `${e.name}: ${e.message}` : String(e)}`;
}

/** Sends `value` to the dead letters with `reason` (origin: the sink operator's subtask). */
export function rejectRecord(ctx: ConnectorContext, value: unknown, reason: string): void {
  ctx.deadLetters.publish({ reason, origin: `${ctx.operatorName}#${ctx.subtaskIndex}`, data: preview(value, PREVIEW_CHARS) });
}
