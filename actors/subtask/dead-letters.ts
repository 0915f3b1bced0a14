// Dead letters: malformed input is published to `weir.<job>.dlq` with the reason, captured by a
// JetStream stream (created on first use) so nothing is lost even when nobody is subscribed.
//
// A dead letter must always fit in one message, whatever the input: its data is cut to fit the server's
// max_payload (base64 of 1 MB, or JSON escaping of 600 KB of quotes, would not), and the headers say
// where the original is (stream + sequence), its size and why it was rejected, so it can be found and
// replayed. Publishing one never throws: a dead letter that cannot be stored is logged.
//
// A letter of a JetStream record carries a Nats-Msg-Id from its identity (origin, stream, sequence, its
// bytes) and the run's lineage (runtime/checkpoint/metadata.ts): a restore (a restart, a takeover, `weir run` from the
// latest checkpoint or a savepoint) continues its checkpoint's lineage and replays the records after it,
// and the stream drops the letters it already has (within DEAD_LETTER_DUPLICATE_WINDOW_MS). A run started
// without restoring state (`--restore none`) has a new lineage: it reads the records again as new, so its
// letters are stored and counted again. Checkpoints from before lineages continue the empty one, whose ids
// are as they were. Only letters the stream stored as new are counted.

import { createHash } from "node:crypto";
import { headers, type MsgHdrs, type NatsConnection } from "@nats-io/transport-node";
import { jetstream, jetstreamManager } from "@nats-io/jetstream";
import type { DeadLetter, DeadLetters } from "../../runtime/contracts/connectors.ts";
import { messageOf } from "../../runtime/core/errors.ts";
import type { LogFn } from "../../runtime/core/log.ts";
import { ConnectorNames, type JobNames } from "../../runtime/core/names.ts";
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

/** How long the dead-letter stream remembers an id: a replay after a restart comes within it (checkpoint interval + restart delay). */
export const DEAD_LETTER_DUPLICATE_WINDOW_MS = 10 * 60_000;

const MAX_REASON = 1000;
const WARN_EVERY_MS = 10_000;
/** Room kept for the envelope's other fields and the protocol line. */
const ENVELOPE_MARGIN = 4096;

export interface EncodedDeadLetter {
  readonly body: string;
  readonly headers: MsgHdrs;
  readonly truncated: boolean;
  /** Its Nats-Msg-Id (see deadLetterId), when it has one. */
  readonly id?: string;
}

/** One line, bounded: header values cannot hold CR/LF, and a reason may quote user data. */
function headerValue(s: string): string {
  const line = s.replace(/[\r\n]+/g, " ");
  return line.length > MAX_REASON ? `${line.slice(0, MAX_REASON)}…` : line;
}

/** A file line or a sink's record has none: a file may be rewritten under its name between runs. */
function hasIdentity(letter: DeadLetter): boolean {
  return letter.stream !== undefined && letter.sequence !== undefined;
}

/**
 * The letter's de-duplication id, when its record has a stable identity (a JetStream stream sequence);
 * the origin is in it so that two sources rejecting one record keep a letter each, and the run's
 * `lineage` so that a run from scratch does not have its letters dropped as the last run's ("": as before
 * lineages).
 */
export function deadLetterId(letter: DeadLetter, lineage: string): string | undefined {
  if (!hasIdentity(letter)) return undefined;
  // The record's bytes too: a stream deleted and created again numbers its messages from 1 again, and a
  // run continuing a lineage across that (one after a run that died before its first checkpoint) must not
  // take another record's letter at the same sequence for its own.
  const digest = createHash("sha256").update(letter.origin).update("\0").update(letter.data).digest("hex").slice(0, 16);
  return `weir-dlq:${lineage ? `${lineage}:` : ""}${letter.stream}:${letter.sequence}:${digest}`;
}

/** The dead letter's body (JSON) and headers, the body within `maxBytes`; `lineage`: see deadLetterId. */
export function encodeDeadLetter(letter: DeadLetter, maxBytes = 1024 * 1024, lineage = ""): EncodedDeadLetter {
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
  const id = deadLetterId(letter, lineage);
  if (id !== undefined) h.set("Nats-Msg-Id", id);
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
  return { body, headers: h, truncated, ...(id !== undefined ? { id } : {}) };
}

type LetterPlace = Pick<DeadLetter, "origin" | "reason" | "stream" | "sequence" | "line">;

/** One per job; each subtask counts its own letters through `forSubtask`. */
export class DeadLetterPublisher {
  private ready: Promise<void> | undefined;
  private readonly inflight = new Set<Promise<unknown>>();
  total = 0;
  /** Letters since the last warning line, and when it was written (one line per 10 s at most). */
  private unlogged = 0;
  private loggedAt = Number.NEGATIVE_INFINITY;
  /** The latest letter not yet in a warning line, and the timer that writes its line when the 10 s are up. */
  private latest: LetterPlace | undefined;
  private warnTimer: ReturnType<typeof setTimeout> | undefined;

  constructor(private readonly nc: NatsConnection, private readonly names: JobNames, private readonly log: LogFn) {}

  /** The stream that keeps dead letters: `weir_<job>_dlq`. */
  get streamName(): string { return new ConnectorNames(this.names).dlqStream; }

  private ensureStream(): Promise<void> {
    return (this.ready ??= (async () => {
      await ensureStream(await jetstreamManager(this.nc), {
        name: this.streamName, subjects: [this.names.dlq], num_replicas: this.names.replicas,
        duplicate_window: DEAD_LETTER_DUPLICATE_WINDOW_MS * 1_000_000,
      });
    })());
  }

  /**
   * Settles (never rejects) once the letter is stored or its failure logged, with whether it counts:
   * false when the stream already had it (a replay's duplicate). A letter without an id cannot be one,
   * so it counts at once; one with an id once the stream says it is new. `lineage`: the run's (deadLetterId).
   */
  publish(letter: DeadLetter, lineage: string): Promise<boolean> {
    let encoded: EncodedDeadLetter;
    try {
      // Encoded now: `letter.data` may be a view of the connection's read buffer.
      encoded = encodeDeadLetter(letter, this.nc.info?.max_payload ?? 1024 * 1024, lineage);
    } catch (e) {
      this.counted(letter);
      this.log(`dead letter from ${letter.origin} could not be encoded (${messageOf(e)}): ${letter.reason.slice(0, 200)}`, { level: "error" });
      return Promise.resolve(true);
    }
    const { body, headers: h, id } = encoded;
    // Copied: `letter.data` may be reused by the time the acknowledgement comes.
    const described: LetterPlace = { origin: letter.origin, reason: letter.reason, stream: letter.stream, sequence: letter.sequence, line: letter.line };
    if (id === undefined) this.counted(described);
    const p: Promise<boolean> = this.ensureStream()
      .then(async () => {
        const ack = await jetstream(this.nc).publish(this.names.dlq, body, { headers: h });
        if (id === undefined) return true;
        if (ack.duplicate) return false;
        this.counted(described);
        return true;
      })
      .catch((e: unknown) => {
        if (id !== undefined) this.counted(described);
        // An error, not a note: the record is in no stream now (published on core NATS only, below).
        this.log(`dead letter from ${letter.origin} (${letter.reason.slice(0, 200)}) could not be stored in ${this.streamName}: ${messageOf(e)}; it went to core NATS subscribers of ${this.names.dlq} only`, { level: "error" });
        // Core publish as a last resort: subscribers still see it.
        try { this.nc.publish(this.names.dlq, body, { headers: h }); } catch { /* logged above */ }
        return true;
      })
      .finally(() => this.inflight.delete(p));
    this.inflight.add(p);
    return p;
  }

  private counted(letter: LetterPlace): void {
    this.total++;
    this.warn(letter);
  }

  /** As Kafka Streams' LogAndContinue: a warning names the reason, at most one line per 10 s (with how many since). */
  private warn(letter: LetterPlace): void {
    this.unlogged++;
    this.latest = letter;
    const now = Date.now();
    if (now - this.loggedAt >= WARN_EVERY_MS) { this.writeWarning(); return; }
    // Later in the window: its line comes when the window ends (else a burst's letters after the first went unsaid).
    this.warnTimer ??= setTimeout(() => { this.warnTimer = undefined; this.writeWarning(); }, this.loggedAt + WARN_EVERY_MS - now);
    this.warnTimer.unref?.();
  }

  private writeWarning(): void {
    const letter = this.latest;
    const n = this.unlogged;
    if (letter === undefined || n === 0) return;
    this.unlogged = 0;
    this.latest = undefined;
    this.loggedAt = Date.now();
    const where = letter.stream !== undefined ? ` (stream ${letter.stream}${letter.sequence !== undefined ? ` sequence ${letter.sequence}` : ""})` : letter.line !== undefined ? ` (line ${letter.line})` : "";
    this.log(`${n === 1 ? "a record" : `${n} records`} went to the dead letters (${this.names.dlq}); the latest from ${letter.origin}${where}: ${headerValue(letter.reason).slice(0, 300)}`, { level: "warn" });
  }

  /** A subtask's letters, with the lineage of the deployment it belongs to (deadLetterId). */
  forSubtask(lineage: string): DeadLetters {
    let count = 0;
    const unstored = new Set<Promise<void>>();
    return {
      publish: (letter) => {
        // Counted as the publisher counts it: at once without an id, else once the stream took it as new.
        const id = hasIdentity(letter);
        if (!id) count++;
        const p: Promise<void> = this.publish(letter, lineage).then((counted) => { if (id && counted) count++; }).finally(() => unstored.delete(p));
        unstored.add(p);
      },
      get count() { return count; },
      // Only the letters published so far: later ones belong to a later checkpoint.
      stored: async () => { await Promise.all([...unstored]); },
    };
  }

  /** Waits for every letter to be stored; letters not yet in a warning line get theirs now. */
  async flush(): Promise<void> {
    while (this.inflight.size > 0) await Promise.all([...this.inflight]);
    clearTimeout(this.warnTimer);
    this.warnTimer = undefined;
    this.writeWarning();
  }
}
