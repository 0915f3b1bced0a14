// Dead letters: malformed input is published to `weir.<job>.dlq` with the reason, captured by a
// JetStream stream (created on first use) so nothing is lost even when nobody is subscribed.
//
// A dead letter must always fit in one message, whatever the input: its data is cut to fit the server's
// max_payload (base64 of 1 MB, or JSON escaping of 600 KB of quotes, would not), and the headers say
// where the original is (stream + sequence), its size and why it was rejected, so it can be found and
// replayed. Publishing one never throws: a dead letter that cannot be stored is logged.

import { headers, type MsgHdrs, type NatsConnection } from "@nats-io/transport-node";
import { jetstream, jetstreamManager } from "@nats-io/jetstream";
import type { DeadLetter, DeadLetters } from "../../runtime/contracts/connectors.ts";
import { messageOf } from "../../runtime/core/errors.ts";
import type { LogFn } from "../../runtime/core/log.ts";
import type { JobNames } from "../../runtime/core/names.ts";
import { ensureStream } from "../../runtime/nats/streams.ts";

const decoder = new TextDecoder("utf-8", { fatal: true });

/** Header names on every dead letter (the body repeats them, as JSON). */
export const DeadLetterHeader = {
  Reason: "Weir-Reason",
  Origin: "Weir-Origin",
  Subject: "Weir-Subject",
  Stream: "Weir-Stream",
  Sequence: "Weir-Sequence",
  Line: "Weir-Line",
  OriginalSize: "Weir-Original-Size",
  Truncated: "Weir-Truncated",
} as const;

const MAX_REASON = 1000;
const WARN_EVERY_MS = 10_000;
/** Room kept for the envelope's other fields and the protocol line. */
const ENVELOPE_MARGIN = 4096;

export interface EncodedDeadLetter {
  readonly body: string;
  readonly headers: MsgHdrs;
  readonly truncated: boolean;
}

/** One line, bounded: header values cannot hold CR/LF, and a reason may quote user data. */
function headerValue(s: string): string {
  const line = s.replace(/[\r\n]+/g, " ");
  return line.length > MAX_REASON ? `${line.slice(0, MAX_REASON)}…` : line;
}

/** The dead letter's body (JSON) and headers, the body within `maxBytes`. */
export function encodeDeadLetter(letter: DeadLetter, maxBytes = 1024 * 1024): EncodedDeadLetter {
  let data: string;
  let encoding: "utf8" | "base64" = "utf8";
  let size: number;
  if (typeof letter.data === "string") {
    data = letter.data;
    size = Buffer.byteLength(data);
  } else {
    size = letter.data.byteLength;
    try { data = decoder.decode(letter.data); } catch {
      data = Buffer.from(letter.data.buffer, letter.data.byteOffset, letter.data.byteLength).toString("base64");
      encoding = "base64";
    }
  }
  const reason = headerValue(letter.reason);
  const h = headers();
  h.set(DeadLetterHeader.Reason, reason);
  h.set(DeadLetterHeader.Origin, headerValue(letter.origin));
  if (letter.subject !== undefined) h.set(DeadLetterHeader.Subject, headerValue(letter.subject));
  if (letter.stream !== undefined) h.set(DeadLetterHeader.Stream, letter.stream);
  if (letter.sequence !== undefined) h.set(DeadLetterHeader.Sequence, String(letter.sequence));
  if (letter.line !== undefined) h.set(DeadLetterHeader.Line, String(letter.line));
  h.set(DeadLetterHeader.OriginalSize, String(size));
  const budget = Math.max(1024, maxBytes - ENVELOPE_MARGIN - reason.length * 2);
  const envelope = (d: string, truncated: boolean) => JSON.stringify({
    reason,
    origin: letter.origin,
    ...(letter.subject !== undefined ? { subject: letter.subject } : {}),
    ...(letter.stream !== undefined ? { stream: letter.stream } : {}),
    ...(letter.sequence !== undefined ? { sequence: letter.sequence } : {}),
    ...(letter.line !== undefined ? { line: letter.line } : {}),
    data: d,
    encoding,
    size,
    ...(truncated ? { truncated: true } : {}),
    at: new Date().toISOString(),
  });
  let body = envelope(data, false);
  let bytes = Buffer.byteLength(body);
  let truncated = false;
  // Escaping can grow text up to 6x (\u0000): cut in proportion until it fits (two or three rounds).
  while (bytes > budget) {
    truncated = true;
    const keep = Math.floor(data.length * (budget / bytes) * 0.95);
    data = data.slice(0, keep);
    body = envelope(data, true);
    bytes = Buffer.byteLength(body);
  }
  if (truncated) h.set(DeadLetterHeader.Truncated, "true");
  return { body, headers: h, truncated };
}

/** One per job; each subtask counts its own letters through `forSubtask`. */
export class DeadLetterPublisher {
  private ready: Promise<void> | undefined;
  private readonly inflight = new Set<Promise<unknown>>();
  total = 0;
  /** Letters since the last warning line, and when it was written (one line per 10 s at most). */
  private unlogged = 0;
  private loggedAt = Number.NEGATIVE_INFINITY;

  constructor(private readonly nc: NatsConnection, private readonly names: JobNames, private readonly log: LogFn) {}

  /** The stream that keeps dead letters: `weir_<job>_dlq`. */
  get streamName(): string { return `weir_${this.names.job}_dlq`; }

  private ensureStream(): Promise<void> {
    return (this.ready ??= (async () => {
      await ensureStream(await jetstreamManager(this.nc), { name: this.streamName, subjects: [this.names.dlq], num_replicas: this.names.replicas });
    })());
  }

  /** Settles (never rejects) once the letter is stored or its failure logged. */
  publish(letter: DeadLetter): Promise<void> {
    this.total++;
    this.warn(letter);
    let encoded: EncodedDeadLetter;
    try {
      // Encoded now: `letter.data` may be a view of the connection's read buffer.
      encoded = encodeDeadLetter(letter, this.nc.info?.max_payload ?? 1024 * 1024);
    } catch (e) {
      this.log(`dead letter from ${letter.origin} could not be encoded (${messageOf(e)}): ${letter.reason.slice(0, 200)}`, { level: "error" });
      return Promise.resolve();
    }
    const { body, headers: h } = encoded;
    const p: Promise<void> = this.ensureStream()
      .then(async () => { await jetstream(this.nc).publish(this.names.dlq, body, { headers: h }); })
      .catch((e: unknown) => {
        // An error, not a note: the record is in no stream now (published on core NATS only, below).
        this.log(`dead letter from ${letter.origin} (${letter.reason.slice(0, 200)}) could not be stored in ${this.streamName}: ${messageOf(e)}; it went to core NATS subscribers of ${this.names.dlq} only`, { level: "error" });
        // Core publish as a last resort: subscribers still see it.
        try { this.nc.publish(this.names.dlq, body, { headers: h }); } catch { /* logged above */ }
      })
      .finally(() => this.inflight.delete(p));
    this.inflight.add(p);
    return p;
  }

  /** As Kafka Streams' LogAndContinue: a warning names the reason, at most one line per 10 s (with how many since). */
  private warn(letter: DeadLetter): void {
    this.unlogged++;
    const now = Date.now();
    if (now - this.loggedAt < WARN_EVERY_MS) return;
    const n = this.unlogged;
    this.unlogged = 0;
    this.loggedAt = now;
    const where = letter.stream !== undefined ? ` (stream ${letter.stream}${letter.sequence !== undefined ? ` sequence ${letter.sequence}` : ""})` : letter.line !== undefined ? ` (line ${letter.line})` : "";
    this.log(`${n === 1 ? "a record" : `${n} records`} went to the dead letters (${this.names.dlq}); the latest from ${letter.origin}${where}: ${headerValue(letter.reason).slice(0, 300)}`, { level: "warn" });
  }

  forSubtask(): DeadLetters {
    let count = 0;
    const unstored = new Set<Promise<void>>();
    return {
      publish: (letter) => {
        count++;
        const p = this.publish(letter).finally(() => unstored.delete(p));
        unstored.add(p);
      },
      get count() { return count; },
      // Only the letters published so far: later ones belong to a later checkpoint.
      stored: async () => { await Promise.all([...unstored]); },
    };
  }

  async flush(): Promise<void> {
    while (this.inflight.size > 0) await Promise.all([...this.inflight]);
  }
}
