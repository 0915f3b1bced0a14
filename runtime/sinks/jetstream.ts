// Sinks.jetstream({ stream?, subject }): one JSON message per record, published asynchronously with up to
// `maxInFlight` (default 1000) unacknowledged; `write` returns a promise while the window is full;
// `flush()` waits for every ack and throws the first failure (naming stream and subject).
//
// Exactly-once design (the checkpoint issue wires it): every message carries a deterministic
// `Nats-Msg-Id` `<job>:<uid>:<subtask>:<epoch>:<n>` (names.ts), `n` counting this writer's records.
// `snapshotState()` returns `{ epoch, sequence }` and is taken after `flush()` at a checkpoint; a writer
// created with that state as `restoredState` continues the same ids, so records replayed after a restore
// are dropped by the stream's duplicate window (server-side dedup, measured to work on 2.9.10) as long as
// recovery happens within the window (`duplicateWindowMs`, default 2 min, set on streams this sink
// creates) and the replay is deterministic per subtask. A restore at another sink parallelism changes the
// subtask in the ids: records replayed across a rescale are not deduplicated (at-least-once there).
//
// `stream`: when given and missing, the stream is created on the first record: for a fixed `subject`, that
// subject alone (so another job's stream under the same first token does not overlap it); for a function,
// every subject under the first record's first token (`orders.eu.u1` → `orders.>`; a single token `counts`
// → `counts` and `counts.>`), as a function's subjects may differ in any token after the first; another sink
// of the job naming the same stream adds its own subjects to it (captureOwn). Publishes expect that stream
// (a subject another stream captures is an error naming both, not a silent misroute).

import * as t from "io-ts";
import { randomBytes } from "node:crypto";
import { jetstreamManager, type JetStreamManager } from "@nats-io/jetstream";
import type { NatsConnection } from "@nats-io/transport-node";
import { subjectMatcher, subjectMatches } from "../nats/subject-match.ts";
import { lookUpStream } from "../nats/streams.ts";
import { JetStreamPublishPipe, type PipePublishOptions, type PubAckLike } from "../nats/publish-pipe.ts";
import { publishBatch } from "../nats/publish-batch.ts";
import { isTransientJetStreamError, retryJetStream, waitForStreamLeader } from "../../state/backends/jetstream-retry.ts";
import { reconcileStream } from "../../state/backends/stream-replicas.ts";
import type { ConnectorContext, RestoredPart, SinkContext, SinkDef, SinkWriter } from "../contracts/connectors.ts";
import { ErrorCode, WeirError, messageOf } from "../core/errors.ts";
import { ConnectorNames } from "../core/names.ts";
import { PositiveInt, decodeOptions } from "../core/validation.ts";
import { InflightWindow } from "./inflight.ts";
import { checkSubjectOption, subjectResolver, type SubjectOption } from "./subject.ts";
import { rejectRecord, sinkPayload, type SinkPayload } from "./payload.ts";
import { ExactlyOnceJetStreamWriter, windowPublisher } from "./jetstream-exactly-once.ts";

export interface JetStreamSinkOptions<T> {
  readonly stream?: string;
  readonly subject: SubjectOption<T>;
  /**
   * "exactly-once" (the default when the job takes checkpoints): output is published when the checkpoint
   * that covers it commits (two-phase commit, see jetstream-exactly-once.ts). "at-least-once": published
   * at once; a restart may publish some records again.
   */
  readonly delivery?: "exactly-once" | "at-least-once";
  /** Unacknowledged publishes before `write` waits. Default 1000. */
  readonly maxInFlight?: number;
  /**
   * Duplicate window of the stream this sink creates (with `stream`; an existing stream keeps its own).
   * Default 600000 (10 min) with exactly-once delivery, else the server's default (120000).
   */
  readonly duplicateWindowMs?: number;
}

/** What the writer checkpoints: the id epoch and the number of records written so far. */
export interface JetStreamSinkState {
  readonly epoch: string;
  readonly sequence: number;
}

export interface JetStreamSinkWriter<T> extends SinkWriter<T> {
  snapshotState(): JetStreamSinkState;
  /** Publishes the stream acknowledged as duplicates (replays dropped by the duplicate window). */
  readonly duplicates: number;
}

const Options = t.intersection([
  t.type({ subject: t.union([t.string, t.Function]) }),
  t.partial({
    stream: t.refinement(t.string, (s) => /^[^\s.*>/\\]+$/.test(s), "StreamName"),
    maxInFlight: PositiveInt,
    duplicateWindowMs: PositiveInt,
    delivery: t.keyof({ "exactly-once": null, "at-least-once": null }),
  }),
]);

export function jetstreamSink<T>(options: JetStreamSinkOptions<T>): SinkDef<T> {
  decodeOptions(Options, options, "Sinks.jetstream", "Sinks.jetstream options");
  const what = options.stream ? `Sinks.jetstream (stream "${options.stream}")` : "Sinks.jetstream";
  checkSubjectOption(what, options.subject);
  if (options.duplicateWindowMs !== undefined && options.stream === undefined) {
    // Without `stream` the sink creates no stream, so there is no window to set: it would be ignored.
    throw new WeirError(ErrorCode.InvalidOption, `${what}: duplicateWindowMs sets the duplicate window of the stream the sink creates: give stream too (without it no stream is created and the option would be ignored)`);
  }
  // A subject function's subject that the named stream does not capture: a dead letter (a publish there
  // waits for a responder that never comes, then fails the commit, again after every restart).
  const resolverFor = (ctx: SinkContext, capturing: readonly string[] | undefined) => {
    const reject = (value: T, reason: string) => rejectRecord(ctx, value, reason);
    const resolve = subjectResolver(what, options.subject, reject);
    if (typeof options.subject !== "function" || options.stream === undefined) return resolve;
    // The stream's filters, each split once (not per record).
    const filtersOf = (names: readonly string[]) => ({ names, matchers: names.map(subjectMatcher) });
    let filters = capturing === undefined ? undefined : filtersOf(capturing);
    return (value: T): string | undefined => {
      const subject = resolve(value);
      if (subject === undefined) return undefined;
      // A stream weir creates takes the first record's subjects (derivedSubjects).
      filters ??= filtersOf(derivedSubjects(subject, false));
      if (filters.matchers.some((matches) => matches(subject))) return subject;
      reject(value, `${what}: the subject function returned "${subject}", which stream "${options.stream}" does not capture (its subjects: ${filters.names.join(", ")})`);
      return undefined;
    };
  };
  const maxInFlight = options.maxInFlight ?? 1000;
  return {
    kind: "jetstream",
    settings: options,
    async createWriter(ctx): Promise<SinkWriter<T> | JetStreamSinkWriter<T>> {
      const names = new ConnectorNames(ctx.names);
      // A record the target stream would refuse is a dead letter, not a commit failing for ever.
      const target = options.stream ? await targetStream(ctx, options.stream) : undefined;
      const maxBytes = target?.maxBytes;
      if ((options.delivery ?? (ctx.checkpointing ? "exactly-once" : "at-least-once")) === "exactly-once") {
        if (!ctx.checkpointing) throw new WeirError(ErrorCode.Sink, `${what}: delivery "exactly-once" needs checkpoints: set checkpointIntervalMs`);
        return exactlyOnceWriter(ctx, options, resolverFor(ctx, target?.subjects), maxInFlight, maxBytes);
      }
      const resolveSubject = resolverFor(ctx, target?.subjects);
      const restored = restoredState(ctx);
      const epoch = restored?.epoch ?? Date.now().toString(36) + randomBytes(2).toString("hex");
      let sequence = restored?.sequence ?? 0;
      let duplicates = 0;
      const window = new InflightWindow(maxInFlight);
      let ready: Promise<void> | undefined;
      let streamReady = options.stream === undefined;
      const pipe = new JetStreamPublishPipe(ctx.nc);
      const countDuplicate = (ack: { duplicate: boolean }) => { if (ack.duplicate) duplicates++; };

      const publish = (subject: string, payload: SinkPayload, id: string) =>
        window.add(
          publishRetried(ctx.nc, pipe, subject, payload, { msgID: id, ...(options.stream ? { expectStream: options.stream } : {}) }),
          (e) => publishError(options.stream, subject, e),
          countDuplicate,
        );

      return {
        write(value) {
          window.throwIfFailed();
          const payload = sinkPayload(ctx, value, maxBytes);
          if (payload === undefined) return;
          const subject = resolveSubject(value);
          if (subject === undefined) return;
          const id = names.sinkMessageId(ctx.operatorUid, ctx.subtaskIndex, epoch, ++sequence);
          if (!streamReady) {
            // The first record names the subjects of a stream to create; later writes queue behind it.
            ready ??= ensureStream(ctx, options.stream!, derivedSubjects(subject, typeof options.subject === "string"), options.duplicateWindowMs, subject).then(() => { streamReady = true; });
            return ready.then(() => publish(subject, payload, id));
          }
          return publish(subject, payload, id);
        },
        async flush() {
          if (ready) await ready;
          await window.drain();
        },
        snapshotState: () => ({ epoch, sequence }),
        get duplicates() { return duplicates; },
        async close() {
          await window.drain().catch(() => {});
          pipe.close();
        },
      };
    },
  };
}

async function exactlyOnceWriter<T>(
  ctx: SinkContext,
  options: JetStreamSinkOptions<T>,
  resolveSubject: (value: T) => string | undefined,
  maxInFlight: number,
  maxBytes: number | undefined,
): Promise<SinkWriter<T>> {
  const window = new InflightWindow(maxInFlight);
  const pipe = new JetStreamPublishPipe(ctx.nc);
  const expect: PipePublishOptions = options.stream ? { expectStream: options.stream } : {};
  let streamReady = options.stream === undefined;
  // The target stream is looked up (or created) once, on the first publish; later ones wait for that.
  let ready: Promise<void> | undefined;
  const whenReady = (subject: string): Promise<void> | undefined => {
    if (streamReady) return undefined;
    ready ??= ensureStream(ctx, options.stream!, derivedSubjects(subject, typeof options.subject === "string"), options.duplicateWindowMs ?? EXACTLY_ONCE_DUPLICATE_WINDOW_MS, subject).then(() => { streamReady = true; });
    return ready;
  };
  const publisher = windowPublisher(window, (subject, payload, id) => {
    const go = () => window.add(publishRetried(ctx.nc, pipe, subject, payload, { msgID: id, ...expect }), (e) => publishError(options.stream, subject, e));
    const wait = whenReady(subject);
    return wait ? wait.then(go) : go();
  }, () => pipe.close(), async (records, idOf) => {
    if (records.length === 0) return;
    await whenReady(records[0]![0]);
    const retry = (subject: string, payload: SinkPayload, msgID: string | undefined, e: Error) =>
      republish(ctx.nc, pipe, subject, payload, { ...(msgID !== undefined ? { msgID } : {}), ...expect }, e)
        .catch((err: unknown) => { throw publishError(options.stream, subject, err); });
    await publishBatch(ctx.nc, pipe, records, idOf, { ...expect, maxInFlight, retry }).catch((e: unknown) => {
      throw e instanceof WeirError ? e : new WeirError(ErrorCode.Sink, `Sinks.jetstream: publish to ${options.stream ? `stream "${options.stream}"` : "JetStream"} failed: ${messageOf(e)}`, { cause: e });
    });
  });
  const writer = new ExactlyOnceJetStreamWriter<T>(ctx, resolveSubject, publisher, maxBytes);
  if (ctx.restoredState?.length) await writer.recover(ctx.restoredState);
  return writer;
}

/** Streams an exactly-once sink creates keep message ids 10 minutes: a restart must come within that. */
const EXACTLY_ONCE_DUPLICATE_WINDOW_MS = 10 * 60_000;

function restoredState(ctx: ConnectorContext): JetStreamSinkState | undefined {
  const raw = (ctx as { restoredState?: unknown }).restoredState;
  // In a job, restored state comes as every old subtask's part; take ours.
  const part = Array.isArray(raw) ? (raw as RestoredPart[]).find((p) => p.index === ctx.subtaskIndex)?.state : raw;
  const s = part as Partial<JetStreamSinkState> | undefined;
  if (s === undefined || s === null) return undefined;
  if (typeof s.epoch !== "string" || typeof s.sequence !== "number") {
    throw new WeirError(ErrorCode.Sink, `Sinks.jetstream: restored state is not { epoch, sequence }: ${JSON.stringify(s)?.slice(0, 80)}`);
  }
  return { epoch: s.epoch, sequence: s.sequence };
}

/**
 * A publish with a message id, retried through a leader election (the duplicate window drops a retry of
 * one that did land); the common case costs nothing more than the publish.
 */
function publishRetried(nc: NatsConnection, pipe: JetStreamPublishPipe, subject: string, payload: SinkPayload, opts: PipePublishOptions): Promise<PubAckLike> {
  return pipe.publish(subject, payload, opts).catch((e: unknown) => republish(nc, pipe, subject, payload, opts, e));
}

/**
 * After a publish failed with `e`: again through a leader election when `e` is transient, else `e`. A
 * publish nobody answered with no stream named is first checked: when no stream captures the subject,
 * no retry (30 s of them) or restart helps.
 */
async function republish(nc: NatsConnection, pipe: JetStreamPublishPipe, subject: string, payload: SinkPayload, opts: PipePublishOptions, e: unknown): Promise<PubAckLike> {
  if (!isTransientJetStreamError(e)) throw e;
  if (opts.expectStream === undefined && /no responders|503/i.test(messageOf(e)) && !(await someStreamCaptures(nc, subject))) {
    throw new WeirError(ErrorCode.StreamConfig, `Sinks.jetstream: no stream captures subject "${subject}": create a stream for it, or name one with \`stream\` (weir creates it)`, { cause: e });
  }
  return retryJetStream(() => pipe.publish(subject, payload, opts));
}

/** False only when the server says no stream captures `subject` (no answer, as in a leader election: true). */
async function someStreamCaptures(nc: NatsConnection, subject: string): Promise<boolean> {
  try {
    await (await jetstreamManager(nc, { checkAPI: false })).streams.find(subject);
    return true;
  } catch (e) {
    return !/no stream matches subject/i.test(messageOf(e));
  }
}

function publishError(stream: string | undefined, subject: string, e: unknown): WeirError {
  if (e instanceof WeirError) return e;
  let why = messageOf(e);
  if (/no responders|503/i.test(why)) why = "no stream captures this subject";
  const where = stream ? `stream "${stream}", subject "${subject}"` : `subject "${subject}"`;
  // Another stream captures the subject: no restart changes that.
  if (/expected stream does not match|10060/i.test(why)) {
    return new WeirError(ErrorCode.StreamConfig, `Sinks.jetstream: publish to ${where} failed: another stream captures this subject (${why})`, { cause: e });
  }
  return new WeirError(ErrorCode.Sink, `Sinks.jetstream: publish to ${where} failed: ${why}`, { cause: e });
}

/** A fixed subject: itself. From a function: `orders.eu.u1` → ["orders.>"]; `counts` → ["counts", "counts.>"]. */
export function derivedSubjects(subject: string, fixed: boolean): string[] {
  if (fixed) return [subject];
  const first = subject.split(".")[0]!;
  return subject.includes(".") ? [`${first}.>`] : [first, `${first}.>`];
}

/**
 * What the target stream takes, when it exists: its subjects, and the payload bytes when it sets a
 * max_msg_size (a stream weir creates sets none; the server counts the headers too: the message id and
 * the expected stream, under 128 bytes beside the stream's name).
 */
async function targetStream(ctx: ConnectorContext, stream: string): Promise<{ subjects?: string[]; maxBytes?: number } | undefined> {
  const info = await lookUpStream(await jetstreamManager(ctx.nc, { checkAPI: false }), stream).catch(() => undefined);
  if (info === undefined) return undefined;
  const max = info.config.max_msg_size;
  return {
    ...(info.config.subjects ? { subjects: info.config.subjects } : {}),
    ...(max !== undefined && max > 0 ? { maxBytes: Math.max(0, max - 128 - stream.length) } : {}),
  };
}

const createdBy = (ctx: ConnectorContext) => `created by weir job ${ctx.names.job} for Sinks.jetstream`;

async function ensureStream(ctx: ConnectorContext, stream: string, subjects: string[], duplicateWindowMs: number | undefined, firstSubject: string): Promise<void> {
  // No `$JS.API.INFO` check (only the meta leader answers it: it times out, unretried, while one is elected).
  const jsm = await jetstreamManager(ctx.nc, { checkAPI: false });
  try {
    const info = await lookUpStream(jsm, stream);
    if (info) {
      // One weir created follows the job's natsReplicas, as its own streams do; a user's own is left alone.
      const changed = info.config.description === createdBy(ctx) && await reconcileStream(jsm, info, { replicas: ctx.names.replicas }, ctx.log);
      if (changed && ctx.names.replicas > 1) await waitForStreamLeader(() => jsm.streams.info(stream));
      await captureOwn(ctx, jsm, stream, subjects, firstSubject);
      return;
    }
  } catch (e) {
    if (e instanceof WeirError) throw e;
    throw new WeirError(ErrorCode.Sink, `Sinks.jetstream: cannot look up stream "${stream}": ${messageOf(e)}`, { cause: e });
  }
  try {
    await retryJetStream(() => jsm.streams.add({
      name: stream,
      subjects,
      num_replicas: ctx.names.replicas,
      description: createdBy(ctx),
      ...(duplicateWindowMs !== undefined ? { duplicate_window: duplicateWindowMs * 1_000_000 } : {}),
    }));
    if (ctx.names.replicas > 1) await waitForStreamLeader(() => jsm.streams.info(stream));
    // Every subtask adds it (the same config is no error): one line for the job, not one per subtask.
    if (ctx.subtaskIndex === 0) ctx.log(`Sinks.jetstream: created stream "${stream}" for ${subjects.join(", ")}`);
  } catch (e) {
    // Another subtask may have created it first: maybe another sink of the job, for other subjects.
    try { await jsm.streams.info(stream); } catch {
      // Another stream holds some of these subjects (`app.out.x` → `app.>` beside a stream on `app.in.>`):
      // say what to do. A restart goes through once the stream is created (or the other one changed), so
      // the restart strategy still applies (tests/cli-stop fails a job this way on purpose).
      const hint = /subjects overlap|10065/i.test(messageOf(e)) ? `; create "${stream}" yourself with the subjects it should capture (a subject function's stream is created on its first token)` : "";
      throw new WeirError(ErrorCode.Sink, `Sinks.jetstream: cannot create stream "${stream}" for ${subjects.join(", ")}: ${messageOf(e)}${hint}`, { cause: e });
    }
    await captureOwn(ctx, jsm, stream, subjects, firstSubject);
  }
}

/**
 * The stream exists: it must capture `firstSubject`. One this job's sinks created for other subjects
 * (two sinks of the job writing `out.orders` and `out.errors` into one stream) gets these added; anyone
 * else's is left as it is, and the sink fails naming the stream's subjects. Updates are not conditional:
 * two sinks adding theirs at once may drop one, so each checks again after its own (a sink that still
 * finds its subject dropped later fails, and its restart adds it again).
 */
async function captureOwn(ctx: ConnectorContext, jsm: JetStreamManager, stream: string, subjects: readonly string[], firstSubject: string): Promise<void> {
  for (let attempt = 0; ; attempt++) {
    const config = (await retryJetStream(() => jsm.streams.info(stream))).config;
    const own = config.subjects ?? [];
    if (own.some((f) => subjectMatches(f, firstSubject))) return;
    if (config.description !== createdBy(ctx) || attempt === 3) return checkCaptures(stream, own, firstSubject);
    try {
      await retryJetStream(() => jsm.streams.update(stream, { ...config, subjects: [...own, ...subjects.filter((x) => !own.includes(x))] }));
    } catch (e) {
      throw new WeirError(ErrorCode.Sink, `Sinks.jetstream: cannot add ${subjects.join(", ")} to stream "${stream}" (${own.join(", ")}): ${messageOf(e)}`, { cause: e });
    }
    if (ctx.subtaskIndex === 0) ctx.log(`Sinks.jetstream: added ${subjects.join(", ")} to stream "${stream}" (another sink of the job created it for ${own.join(", ")})`);
  }
}

/**
 * A stream that does not take the subject: every publish would wait for a responder and the job would
 * go through its whole restart strategy (minutes) before failing, or, in batch mode, fail after writing
 * part of its output with "no stream captures this subject".
 */
function checkCaptures(stream: string, own: string[], subject: string): void {
  if (own.some((f) => subjectMatches(f, subject))) return;
  throw new WeirError(ErrorCode.StreamConfig, `Sinks.jetstream: stream "${stream}" does not capture subject "${subject}" (its subjects: ${own.join(", ") || "none"}); add the subject to the stream, or name the stream that captures it`);
}
