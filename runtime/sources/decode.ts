// Turning raw input (a message payload, a file line) into a record: the `format` and optional io-ts
// `codec` every source shares. A record that fails either goes to the job's dead letters with the reason
// and where it came from (subject + stream sequence, or line); the source carries on.

import * as t from "io-ts";
import type { DeadLetters } from "../contracts/connectors.ts";
import { ErrorCode, WeirError, messageOf } from "../core/errors.ts";
import { describeErrors } from "../core/validation.ts";

export const PayloadFormat = { Json: "json", Text: "text", Bytes: "bytes" } as const;
export type PayloadFormat = (typeof PayloadFormat)[keyof typeof PayloadFormat];

/** An io-ts decoder (any `t.Type` works); its output is the record, so codecs may convert values. */
export type Codec<T> = t.Decoder<unknown, T>;

/** Returned instead of a record when the input went to the dead letters. */
export const REJECTED: unique symbol = Symbol("weir.rejected");
export type Rejected = typeof REJECTED;

/** Where an input came from, for the dead letter. Positional arguments: no object per record. */
export type PayloadDecoder<T> = (data: Uint8Array, subject: string | undefined, sequence: number | undefined) => T | Rejected;
export type TextDecoderFn<T> = (text: string, line: number) => T | Rejected;

// Fatal: input that is not UTF-8 is rejected with its reason rather than silently turned into U+FFFD
// (measured as fast as the lenient decoder on valid input).
// ignoreBOM: a message's leading U+FEFF is its data (a message is no file with a byte order mark).
const utf8 = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });

/** The payload as text, or undefined when it is not UTF-8. */
function textOf(d: Uint8Array): string | undefined {
  try {
    return utf8.decode(d);
  } catch {
    return undefined;
  }
}

export function assertCodec(what: string, codec: unknown): void {
  if (codec !== undefined && typeof (codec as { decode?: unknown })?.decode !== "function") {
    throw new WeirError(ErrorCode.InvalidOption, `${what}: codec must be an io-ts type (with a decode function)`);
  }
}

export function assertFormat(what: string, format: unknown, allowed: readonly string[]): void {
  if (format !== undefined && !allowed.includes(format as string)) {
    throw new WeirError(ErrorCode.InvalidOption, `${what}: format must be ${allowed.map((f) => `"${f}"`).join(" | ")}, got ${JSON.stringify(format)}`);
  }
}

/** Applies the codec (when there is one) to an already parsed value. */
function applyCodec<T>(codec: Codec<T> | undefined, value: unknown, reject: (reason: string) => Rejected): T | Rejected {
  if (codec === undefined) return value as T;
  let r: ReturnType<Codec<T>["decode"]>;
  try {
    r = codec.decode(value);
  } catch (e) {
    // A recursive codec on a very deep value overflows the stack: the input is rejected, not the job.
    return reject(`codec ${(codec as { name?: string }).name ?? "codec"} threw: ${messageOf(e)}`);
  }
  if (r._tag === "Right") return r.right;
  return reject(`codec ${(codec as { name?: string }).name ?? "codec"}: ${describeErrors(r.left)}`);
}

/**
 * Decoder for message payloads: "json" parses (then the codec, if any), "text" gives the UTF-8 string
 * (the codec, if any, sees the string), "bytes" gives a copy of the payload (it must not pin the
 * connection's read buffer).
 */
export function payloadDecoder<T>(format: PayloadFormat, codec: Codec<T> | undefined, origin: string, deadLetters: DeadLetters, stream?: string): PayloadDecoder<T> {
  let data: Uint8Array;
  let subject: string | undefined;
  let sequence: number | undefined;
  const reject = (reason: string): Rejected => {
    deadLetters.publish({
      reason, origin, data,
      ...(subject !== undefined ? { subject } : {}),
      ...(stream !== undefined ? { stream } : {}),
      ...(sequence !== undefined ? { sequence } : {}),
    });
    return REJECTED;
  };
  switch (format) {
    case PayloadFormat.Json:
      return (d, s, q) => {
        data = d; subject = s; sequence = q;
        const text = textOf(d);
        if (text === undefined) return reject("invalid UTF-8");
        let value: unknown;
        try {
          value = JSON.parse(text);
        } catch (e) {
          return reject(`invalid JSON: ${messageOf(e)}`);
        }
        return applyCodec(codec, value, reject);
      };
    case PayloadFormat.Text:
      return (d, s, q) => {
        data = d; subject = s; sequence = q;
        const text = textOf(d);
        return text === undefined ? reject("invalid UTF-8") : applyCodec(codec, text, reject);
      };
    case PayloadFormat.Bytes:
      return (d, s, q) => {
        data = d; subject = s; sequence = q;
        return applyCodec(codec, d.slice(), reject);
      };
  }
}

/** Decoder for text lines (files): "json" parses each line, "text" keeps it; the line number is 1-based. */
export function lineDecoder<T>(json: boolean, codec: Codec<T> | undefined, origin: string, deadLetters: DeadLetters): TextDecoderFn<T> {
  let text = "";
  let line = 0;
  const reject = (reason: string): Rejected => {
    deadLetters.publish({ reason: `line ${line}: ${reason}`, origin, data: text, line });
    return REJECTED;
  };
  if (!json) return (s, l) => { text = s; line = l; return applyCodec(codec, s, reject); };
  return (s, l) => {
    text = s; line = l;
    let value: unknown;
    try {
      value = JSON.parse(s);
    } catch (e) {
      return reject(`invalid JSON: ${messageOf(e)}`);
    }
    return applyCodec(codec, value, reject);
  };
}

/** Decoder for values another parser already built (CSV rows): only the codec can reject them. */
export function valueDecoder<T>(codec: Codec<T> | undefined, origin: string, deadLetters: DeadLetters): (value: unknown, raw: string, line: number) => T | Rejected {
  let raw = "";
  let line = 0;
  const reject = (reason: string): Rejected => {
    deadLetters.publish({ reason: `line ${line}: ${reason}`, origin, data: raw, line });
    return REJECTED;
  };
  return (value, r, l) => { raw = r; line = l; return applyCodec(codec, value, reject); };
}
