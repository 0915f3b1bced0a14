// Sources.jetstream({ stream, subjects, format?, codec?, startAt?, bounded?, backlogLag?, metadata? }): replayable
// source reading a JetStream stream.
//
// - Subjects split across source subtasks deterministically: subject j goes to subtask j mod p. A 2.9
//   server takes one filter subject per consumer, so each assigned subject gets its own ordered consumer
//   (a "lane", see jetstream-lane.ts for the consumption strategy and its measurements). A subtask with no
//   subject ends at once when bounded and idles otherwise. Overlapping subjects ("a.>" and "a.b") read
//   the overlap twice: give disjoint ones. On nats-server before 2.9.15 a lane starting shortly behind the
//   head reads that stretch unfiltered first (a server defect makes the filtered read crawl: catch-up.ts).
// - Offsets: snapshotState() is `{ stream, offsets: { [subject]: lastDeliveredStreamSequence } }`;
//   `restoredState` (one such object, or an array of them, e.g. every subtask's after a rescale; the
//   highest offset per subject wins) resumes each subject right after its offset. Subjects without an
//   offset start at `startAt`.
// - `bounded: true` is an addition beside Flink's API (benchmarks and tests need a replay that ends): each
//   subject reads what is in the stream when its consumer is created, then the source ends.
// - Malformed records (bad JSON, codec failure) go to the dead letters with subject, stream sequence and
//   reason; the source carries on.
// - RecordAttributes: `{ isBacklog: true }` while more than `backlogLag` (default 1000) messages behind
//   the stream head (the consumer's pending count, summed over this subtask's subjects), `{ isBacklog:
//   false }` once caught up; only changes are reported, the first value at start.

import * as t from "io-ts";
import { randomBytes } from "node:crypto";
import { jetstream, type JsMsg } from "@nats-io/jetstream";
import type { SourceDef, SourceReader } from "../contracts/connectors.ts";
import type { RecordAttributes } from "../transport/frames.ts";
import { ErrorCode, WeirError, messageOf } from "../core/errors.ts";
import { ConnectorNames } from "../core/names.ts";
import { NonNegativeInt, PositiveInt, decodeOptions } from "../core/validation.ts";
import { ConsumerLane, type StartAt } from "./jetstream-lane.ts";
import { retryJetStream } from "../../state/backends/jetstream-retry.ts";
import { PayloadFormat, REJECTED, assertCodec, payloadDecoder, type Codec } from "./decode.ts";
import { Wakeup } from "./wakeup.ts";
import { watchClusterChanges } from "../nats/cluster-changes.ts";
import { serverScansPendingPerMessage, type StreamHead } from "./catch-up.ts";
import { assertMetadataFormat, headersOf, type NatsMessage } from "./message-metadata.ts";

export interface JetStreamSourceOptions<T> {
  readonly stream: string;
  readonly subjects: readonly string[];
  /** Payload format, default "json". */
  readonly format?: PayloadFormat;
  /** io-ts type each record must pass (applied to the parsed JSON, or to the text / bytes). */
  readonly codec?: Codec<T>;
  /** Where a subject without a restored offset starts: "first" (default), "new", a sequence or a time. */
  readonly startAt?: StartAt;
  /** Read up to what the stream holds at start, then end (an addition beside Flink's API). Default false. */
  readonly bounded?: boolean;
  /** Messages behind the head above which the source reports backlog. Default 1000. */
  readonly backlogLag?: number;
  /** Each record as `{ subject, data, headers, sequence, time }` instead of the decoded payload alone. Default false. */
  readonly metadata?: boolean;
}

/** What a JetStream source subtask checkpoints. */
export interface JetStreamSourceState {
  readonly stream: string;
  readonly offsets: Readonly<Record<string, number>>;
  /**
   * The stream's creation time (its info's `created`) when the subtask read it: a stream deleted and
   * created again starts its sequences over, so a restore into it is refused.
   */
  readonly created?: string;
}

const NonEmptyString = t.refinement(t.string, (s) => s.length > 0, "NonEmptyString");
const TimeLike = new t.Type<Date | string | number, unknown, unknown>(
  "Date | ISO string | epoch ms",
  (u): u is Date | string | number => (u instanceof Date || typeof u === "string" || typeof u === "number") && !Number.isNaN(new Date(u).getTime()),
  (u, c) => ((u instanceof Date || typeof u === "string" || typeof u === "number") && !Number.isNaN(new Date(u).getTime()) ? t.success(u) : t.failure(u, c)),
  (a) => a,
);
const Options = t.intersection([
  t.type({ stream: NonEmptyString, subjects: t.refinement(t.array(NonEmptyString), (a) => a.length > 0, "NonEmptyArray<string>") }),
  t.partial({
    format: t.keyof({ json: null, text: null, bytes: null }),
    /** An io-ts codec, checked by assertCodec. */
    codec: t.unknown,
    startAt: t.union([t.literal("first"), t.literal("new"), t.type({ sequence: PositiveInt }), t.type({ time: TimeLike })]),
    bounded: t.boolean,
    backlogLag: NonNegativeInt,
    metadata: t.boolean,
  }),
]);

/** Messages per pull request and the buffer size at which a subject's refills wait (see the lane). */
const MAX_MESSAGES = 1000;
const HIGH_WATER = 4000;
/** A lane that received nothing this long while its stream has more for it gets a new consumer (the lane's watchdog). */
const STALL_MS = 3000;
const WATCH_INTERVAL_MS = 1000;
/**
 * Shortly after the cluster's servers changed (runtime/nats/cluster-changes.ts), a lane idle this long is
 * checked: an ordered consumer placed on the lost server delivers nothing more (measured: 3.5 s of the
 * 5.2–6.1 s to new output in the failover bench's SIGTERM misses), and the stream tells whether anything
 * is waiting.
 */
const QUICK_STALL_MS = 1000;

export function jetstreamSource<T>(options: JetStreamSourceOptions<T> & { readonly codec: Codec<T>; readonly metadata: true }): SourceDef<NatsMessage<T>>;
export function jetstreamSource(options: JetStreamSourceOptions<string> & { readonly format: "text"; readonly metadata: true }): SourceDef<NatsMessage<string>>;
export function jetstreamSource<T = unknown>(options: JetStreamSourceOptions<T> & { readonly metadata: true }): SourceDef<NatsMessage<T>>;
export function jetstreamSource<T>(options: JetStreamSourceOptions<T> & { readonly codec: Codec<T> }): SourceDef<T>;
export function jetstreamSource(options: JetStreamSourceOptions<string> & { readonly format: "text" }): SourceDef<string>;
export function jetstreamSource(options: JetStreamSourceOptions<Uint8Array> & { readonly format: "bytes" }): SourceDef<Uint8Array>;
export function jetstreamSource<T = unknown>(options: JetStreamSourceOptions<T>): SourceDef<T>;
export function jetstreamSource<T = unknown>(options: JetStreamSourceOptions<T>): SourceDef<T> {
  decodeOptions(Options, options, "Sources.jetstream", "Sources.jetstream options");
  assertCodec("Sources.jetstream", options.codec);
  const { stream, subjects } = options;
  const format = options.format ?? PayloadFormat.Json;
  const startAt = options.startAt ?? "first";
  const bounded = options.bounded ?? false;
  const backlogLag = options.backlogLag ?? 1000;
  const metadata = options.metadata ?? false;
  assertMetadataFormat("Sources.jetstream", metadata, format);
  return {
    kind: "jetstream",
    bounded,
    settings: options,
    // After a bounded part of a hybrid source on the same stream: on from where it ended, so that what was
    // published while it read is read once (from the start it was read twice; from "new", skipped).
    continueFrom: (previous) => {
      const p = previous as Partial<JetStreamSourceState> | undefined;
      return p && p.stream === stream && typeof p.offsets === "object" && p.offsets !== null ? p : undefined;
    },
    async createReader(ctx): Promise<SourceReader<T>> {
      const mine = subjects.filter((_, j) => j % ctx.parallelism === ctx.subtaskIndex);
      const { offsets: restored, created: restoredCreated } = mergeOffsets(ctx.restoredState, stream);
      const js = jetstream(ctx.nc);
      const wake = new Wakeup();
      const origin = `${ctx.operatorName} (jetstream ${stream})`;
      const decode = payloadDecoder(format, options.codec, origin, ctx.deadLetters, stream);
      const names = new ConnectorNames(ctx.names);
      const unique = randomBytes(4).toString("hex");

      let start = startAt;
      let replicas = 1;
      let catchUpHead: StreamHead | undefined;
      let created: string | undefined;
      let retention: string | undefined;
      if (mine.length > 0) {
        let lastSeq: number;
        try {
          // Retried through a leader election (the stream's or the meta leader's: a server lost).
          const info = await retryJetStream(async () => (await js.streams.get(stream)).info());
          lastSeq = info.state.last_seq;
          replicas = info.config.num_replicas;
          created = info.created;
          retention = info.config.retention;
          if (serverScansPendingPerMessage(ctx.nc.info?.version)) {
            catchUpHead = { lastSeq, bytesPerMessage: info.state.messages > 0 ? info.state.bytes / info.state.messages : 0 };
          }
        } catch (e) {
          const why = /stream not found/i.test(messageOf(e)) ? "not found" : messageOf(e);
          throw new WeirError(ErrorCode.Source, `Sources.jetstream: stream "${stream}" ${why}`, { cause: e });
        }
        // "new" as an explicit sequence: the client's ordered consumer would restart a "new" consumer that
        // it recreates before its first message from sequence 1.
        if (start === "new") start = { sequence: lastSeq + 1 };
        // weir reads with consumers of its own and replays from checkpointed positions: an interest stream
        // drops what arrives while no consumer exists (a restart), a work queue what any consumer acked.
        if (retention !== undefined && retention !== "limits") {
          throw new WeirError(ErrorCode.StreamConfig, `Sources.jetstream: stream "${stream}" has ${retention} retention; weir replays its input from checkpointed positions, which needs limits retention (an interest stream drops messages published while no consumer exists, as during a restart; a work queue, messages once acknowledged)`);
        }
        if (restoredCreated !== undefined && created !== undefined && restoredCreated !== created) {
          throw new WeirError(ErrorCode.StreamRecreated, `Sources.jetstream: stream "${stream}" was deleted and created again since the checkpoint being restored (created ${restoredCreated} then, ${created} now): its sequences start over, so the checkpoint's position means nothing there; run the job with --restore none to read the new stream from its start`);
        }
      }
      const opened = await Promise.allSettled(mine.map((filter, k) => ConsumerLane.open({
        js, stream, filter, startAt: start, bounded,
        namePrefix: names.sourceConsumerPrefix(ctx.operatorUid, ctx.subtaskIndex, `${unique}_${k}`),
        resumeAfter: restored.get(filter),
        maxMessages: MAX_MESSAGES, highWater: HIGH_WATER,
        wake: () => wake.notify(), log: ctx.log, stallMs: STALL_MS, streamReplicas: replicas,
        ...(catchUpHead ? { catchUpHead } : {}),
      })));
      const lanes = opened.flatMap((r) => (r.status === "fulfilled" ? [r.value] : []));
      const failed = opened.find((r): r is PromiseRejectedResult => r.status === "rejected");
      if (failed) {
        await Promise.all(lanes.map((l) => l.close()));
        throw failed.reason;
      }

      // A message's pending count includes the ones sent after it, so buffered messages are already in it.
      const totalLag = () => lanes.reduce((n, l) => n + (l.done ? 0 : l.lag), 0);
      let backlog = totalLag() > backlogLag;
      let reported: boolean | undefined;
      let drained: JsMsg[] = [];
      /** The lane (split) of each drained message. */
      let drainedLanes: number[] = [];

      // At most `limit` messages (buffer debloating), the lanes taking turns to go first.
      let turn = 0;
      const drainAll = (limit: number) => {
        turn = (turn + 1) % Math.max(1, lanes.length);
        for (let k = 0; k < lanes.length; k++) {
          const lane = (turn + k) % lanes.length;
          const before = drained.length;
          lanes[lane]!.drain(drained, Math.max(0, limit - drained.length));
          for (let i = before; i < drained.length; i++) drainedLanes.push(lane);
        }
      };
      const ended = () => bounded && lanes.every((l) => l.done);
      const check = () => { for (const lane of lanes) if (lane.failure) throw lane.failure; };
      const clusterChanges = bounded && lanes.every((l) => l.done) ? undefined : watchClusterChanges(ctx.nc);
      const watchdog = clusterChanges && setInterval(() => {
        const stallMs = clusterChanges.recent() ? QUICK_STALL_MS : STALL_MS;
        for (const lane of lanes) void lane.watch(stallMs);
      }, WATCH_INTERVAL_MS);
      watchdog?.unref();

      return {
        // Each subject a split: fromSource's watermarks keep one per subject (their event times may run apart).
        splits: { count: lanes.length, ended: (k: number) => lanes[k]!.done },
        async pollNext(maxRecords, maxWaitMs) {
          const limit = maxRecords ?? Number.POSITIVE_INFINITY;
          check();
          drainAll(limit);
          if (drained.length === 0) {
            if (ended()) return null;
            await wake.wait(maxWaitMs);
            check();
            drainAll(limit);
            if (drained.length === 0) return ended() ? null : { values: [] };
          }
          const msgs = drained;
          const msgLanes = drainedLanes;
          drained = [];
          drainedLanes = [];
          const values: T[] = [];
          const timestamps: number[] = [];
          const splits: number[] = [];
          for (let i = 0; i < msgs.length; i++) {
            const m = msgs[i]!;
            const info = m.info;
            const v = decode(m.data, m.subject, info.streamSequence);
            if (v === REJECTED) continue;
            const time = Math.floor(info.timestampNanos / 1e6);
            if (!metadata) values.push(v);
            else {
              const record: NatsMessage<T> = { subject: m.subject, data: v, headers: headersOf(m.headers), sequence: info.streamSequence, time };
              values.push(record as T);
            }
            timestamps.push(time);
            splits.push(msgLanes[i]!);
          }
          backlog = totalLag() > backlogLag;
          return { values, timestamps, splits };
        },
        interrupt: () => wake.notify(),
        takeAttributes(): RecordAttributes | undefined {
          if (reported === backlog) return undefined;
          reported = backlog;
          return { isBacklog: backlog };
        },
        metrics: () => ({ pendingMessages: totalLag() }),
        snapshotState(): JetStreamSourceState {
          const offsets: Record<string, number> = {};
          for (const lane of lanes) offsets[lane.config.filter] = lane.lastSequence;
          return { stream, offsets, ...(created !== undefined ? { created } : {}) };
        },
        async close() {
          if (watchdog) clearInterval(watchdog);
          clusterChanges?.stop();
          await Promise.all(lanes.map((l) => l.close()));
        },
      };
    },
  };
}

/**
 * Offsets from one state or several (a rescale hands a subtask every old subtask's state), and the
 * stream's creation time they were read at (absent in checkpoints from before it was kept).
 */
function mergeOffsets(restored: unknown, stream: string): { offsets: Map<string, number>; created: string | undefined } {
  const out = new Map<string, number>();
  let created: string | undefined;
  const states = Array.isArray(restored) ? restored : restored === undefined || restored === null ? [] : [restored];
  for (const s of states) {
    // An entry a hybrid source left empty: that old subtask was in another part.
    if (s === undefined || s === null) continue;
    const state = s as Partial<JetStreamSourceState>;
    if (typeof state !== "object" || state === null || typeof state.offsets !== "object" || state.offsets === null) {
      throw new WeirError(ErrorCode.Source, `Sources.jetstream: restored state of stream "${stream}" is not { stream, offsets }: ${JSON.stringify(s)?.slice(0, 80)}`);
    }
    if (state.stream !== undefined && state.stream !== stream) continue;
    if (typeof state.created === "string") created ??= state.created;
    for (const [subject, seq] of Object.entries(state.offsets)) {
      if (typeof seq === "number" && Number.isInteger(seq) && seq >= 0) out.set(subject, Math.max(seq, out.get(subject) ?? 0));
    }
  }
  return { offsets: out, created };
}
