// `weir dead-letters <job>`: the job's dead letters (the stream weir_<job>_dlq): when, from which source or
// operator, why, where the record came from, and a preview of it. Once the cause is fixed, `--replay`
// publishes each listed letter's record again, as Kafka users re-drive a dead-letter topic: to the subject
// it came from, or `--to <subject>`. A letter naming a source stream and sequence is replayed from that
// stream while it still holds the message (whole, with its headers, even where the letter's copy was cut
// to fit); otherwise from the letter's own copy, unless that copy was truncated. `--purge` deletes the
// listed letters (with `--replay`, the ones replayed).

import { DeliverPolicy, jetstream, jetstreamManager, type JetStreamManager } from "@nats-io/jetstream";
import { headers, type MsgHdrs, type NatsConnection } from "@nats-io/transport-node";
import { letterData, parseDeadLetterBody, type DeadLetterBody } from "../../../actors/subtask/dead-letter-body.ts";
import { ErrorCode, messageOf, WeirError } from "../../core/errors.ts";
import { ConnectorNames, JobNames } from "../../core/names.ts";
import { connectNats, resolveNatsConnection } from "../../nats/connect.ts";
import type { NatsFlags } from "../../nats/connection-settings.ts";
import { lookUpStream } from "../../nats/streams.ts";
import { subjectProblem } from "../../sinks/subject.ts";

export interface DeadLettersFlags extends NatsFlags {
  readonly json?: boolean;
  readonly last?: number;
  readonly replay?: boolean;
  readonly to?: string;
  readonly purge?: boolean;
}

/** Letters listed when `--last` is not given. */
export const DEFAULT_LAST = 100;
/** Header naming the letter a replayed message came from: `<dlq stream>:<sequence>`. */
export const REPLAYED_FROM_HEADER = "Weir-Replayed-From";

/** One message of the dead-letter stream. */
interface StoredLetter {
  readonly seq: number;
  readonly time: Date;
  readonly body: { readonly letter: DeadLetterBody } | { readonly invalid: string };
}

type ReplayResult = { readonly replayed: string; readonly whole: boolean } | { readonly skipped: string };

export async function deadLettersCommand(job: string, flags: DeadLettersFlags): Promise<number> {
  if (flags.to !== undefined && !flags.replay) throw new WeirError(ErrorCode.InvalidOption, "dead-letters: --to names where --replay publishes; give --replay too");
  const toProblem = flags.to === undefined ? undefined : subjectProblem(flags.to);
  if (toProblem !== undefined) throw new WeirError(ErrorCode.InvalidOption, `dead-letters: --to "${flags.to}" is not a subject to publish to (${toProblem})`);
  const names = new ConnectorNames(new JobNames(job));
  const nc = await connectNats(await resolveNatsConnection({ flags }), "weir-cli");
  try {
    const jsm = await jetstreamManager(nc);
    const info = await lookUpStream(jsm, names.dlqStream);
    if (!info || info.state.messages === 0) {
      if (flags.json) process.stdout.write("[]\n");
      else process.stdout.write(`${job}: no dead letters${info ? "" : ` (no stream ${names.dlqStream} on this NATS)`}\n`);
      return 0;
    }
    const last = flags.last ?? DEFAULT_LAST;
    const letters = await readLetters(nc, names.dlqStream, Math.max(info.state.first_seq, info.state.last_seq - last + 1));
    const results = new Map<number, ReplayResult>();
    if (flags.replay) for (const l of letters) results.set(l.seq, await replay(nc, jsm, names.dlqStream, l, flags.to));
    const purged: number[] = [];
    if (flags.purge) {
      for (const l of letters) {
        const r = results.get(l.seq);
        if (flags.replay && (r === undefined || "skipped" in r)) continue;
        if (await jsm.streams.deleteMessage(names.dlqStream, l.seq, false).catch(() => false)) purged.push(l.seq);
      }
    }
    const earlier = info.state.messages - letters.length;
    if (flags.json) {
      process.stdout.write(`${JSON.stringify(letters.map((l) => ({ seq: l.seq, time: l.time.toISOString(), ...("letter" in l.body ? l.body.letter : { invalid: l.body.invalid }), ...(results.has(l.seq) ? { replay: results.get(l.seq) } : {}), ...(flags.purge ? { purged: purged.includes(l.seq) } : {}) })), null, 2)}\n`);
    } else {
      for (const l of letters) process.stdout.write(describe(l, results.get(l.seq), purged.includes(l.seq)));
      const replayed = [...results.values()].filter((r) => "replayed" in r).length;
      const summary = [`${letters.length} dead letter${letters.length === 1 ? "" : "s"} of ${job}`];
      if (earlier > 0) summary.push(`${earlier} earlier not shown (--last ${info.state.messages} lists them)`);
      if (flags.replay) summary.push(`${replayed} replayed, ${results.size - replayed} not`);
      if (flags.purge) summary.push(`${purged.length} purged`);
      process.stdout.write(`${summary.join("; ")}\n`);
    }
    // A replay that left letters behind is a failure a script must see.
    return [...results.values()].some((r) => "skipped" in r) ? 1 : 0;
  } finally {
    await nc.close();
  }
}

/** The stream's messages from `from` to its end, in order (none when every one of them was deleted). */
async function readLetters(nc: NatsConnection, stream: string, from: number): Promise<StoredLetter[]> {
  const consumer = await jetstream(nc).consumers.get(stream, { deliver_policy: DeliverPolicy.StartSequence, opt_start_seq: from });
  const out: StoredLetter[] = [];
  // Fetches that expire: a range whose letters were all purged delivers nothing, and a consume would wait for ever.
  for (let more = true; more;) {
    const batch = await consumer.fetch({ max_messages: 500, expires: 2000 });
    more = false;
    for await (const m of batch) {
      out.push({ seq: m.seq, time: new Date(Math.floor(m.info.timestampNanos / 1e6)), body: parseDeadLetterBody(m.string()) });
      more = m.info.pending > 0;
    }
  }
  return out;
}

/** Publishes the letter's record again; what it did, or why it could not. */
async function replay(nc: NatsConnection, jsm: JetStreamManager, dlqStream: string, stored: StoredLetter, to: string | undefined): Promise<ReplayResult> {
  if (!("letter" in stored.body)) return { skipped: stored.body.invalid };
  const letter = stored.body.letter;
  const original = letter.stream !== undefined && letter.sequence !== undefined
    ? await jsm.streams.getMessage(letter.stream, { seq: letter.sequence }).catch(() => null)
    : null;
  const subject = to ?? original?.subject ?? letter.subject;
  if (subject === undefined) return { skipped: `the record came from ${letter.line !== undefined ? `line ${letter.line} of a file` : letter.origin}, not a subject: give --to <subject>` };
  if (original === null && letter.truncated) return { skipped: `the letter holds only the first part of the record (${letter.size} bytes)${letter.stream !== undefined ? ` and stream ${letter.stream} no longer has sequence ${letter.sequence}` : ""}` };
  const h = headers();
  copyHeaders(original?.header, h);
  h.set(REPLAYED_FROM_HEADER, `${dlqStream}:${stored.seq}`);
  // The same letter replayed twice into one stream is kept once (within the stream's duplicate window).
  h.set("Nats-Msg-Id", `weir-replay:${dlqStream}:${stored.seq}`);
  const data = original?.data ?? letterData(letter);
  // A JetStream publish only where a stream takes the subject: a core subscriber would get it as a request, unanswered.
  const stream = await jsm.streams.find(subject).catch(() => undefined);
  try {
    if (stream !== undefined) {
      await jetstream(nc).publish(subject, data, { headers: h });
    } else {
      nc.publish(subject, data, { headers: h });
      await nc.flush();
    }
  } catch (e) {
    return { skipped: `publishing to ${subject}${stream !== undefined ? ` (stream ${stream})` : ""} failed: ${messageOf(e)}` };
  }
  return { replayed: subject, whole: original !== null || !letter.truncated };
}

/** The original message's own headers, without its de-duplication id (the replay has its own). */
function copyHeaders(from: MsgHdrs | undefined, into: MsgHdrs): void {
  if (!from) return;
  for (const [k, values] of from) {
    if (k.toLowerCase() === "nats-msg-id") continue;
    for (const v of values) into.append(k, v);
  }
}

function describe(l: StoredLetter, replayed: ReplayResult | undefined, purged: boolean): string {
  const head = `#${l.seq} ${l.time.toISOString()}`;
  const tail = [
    replayed === undefined ? undefined : "replayed" in replayed ? `  replayed to ${replayed.replayed}` : `  not replayed: ${replayed.skipped}`,
    purged ? "  purged" : undefined,
  ].filter((s) => s !== undefined).map((s) => `${s}\n`).join("");
  if (!("letter" in l.body)) return `${head} ${l.body.invalid}\n${tail}`;
  const d = l.body.letter;
  const from = [
    d.stream !== undefined ? `stream ${d.stream}${d.sequence !== undefined ? ` sequence ${d.sequence}` : ""}` : undefined,
    d.subject !== undefined ? `subject ${d.subject}` : undefined,
    d.line !== undefined ? `line ${d.line}` : undefined,
  ].filter((s) => s !== undefined).join(", ");
  const data = d.encoding === "base64" ? `<${d.size} bytes, not UTF-8>` : textPreview(d.data);
  const cut = d.truncated ? ` (truncated: ${d.size} bytes originally)` : "";
  return `${head} ${d.origin}${from ? ` (${from})` : ""}\n  reason: ${d.reason}\n  data: ${data}${cut}\n${tail}`;
}

/** The record's first characters as text on one line: control characters escaped, quotes as they are. */
function textPreview(data: string, max = 120): string {
  const head = JSON.stringify(data.length > max ? data.slice(0, max) : data).slice(1, -1).replace(/\\(["\\])/g, "$1");
  return data.length > max ? `${head}…` : head;
}
