// The job's control protocol: every request a client (`weir status`, `weir stop`, the scenario runner)
// sends on `weir.<job>.ctl.<verb>`, every reply, the discovery ping and the `ended` announcement, as io-ts
// codecs in one place. Both sides decode what they receive, so a message from another version or another
// process fails with one line naming the field, never as a confusing later error.

import * as t from "io-ts";
import { isLeft } from "fp-ts/lib/Either.js";
import { JobStates } from "./machine.ts";
import { ErrorCode, WeirError } from "../../runtime/core/errors.ts";
import { describeErrors } from "../../runtime/core/validation.ts";
import type { JobStatus } from "./job-status.ts";

export const ControlVerb = {
  Status: "status",
  Stop: "stop",
  Cancel: "cancel",
  Checkpoint: "checkpoint",
  FailSubtask: "fail-subtask",
  /** Moves a job's processing time on (`weir run --manual-clock`): timers, processing-time windows, periodic watermarks. */
  AdvanceClock: "advance-clock",
} as const;
export type ControlVerb = (typeof ControlVerb)[keyof typeof ControlVerb];

/** An object with exactly these keys (optional ones may be absent): an unknown key is an error, not ignored. */
function strict<P extends t.Props, O extends t.Props = {}>(name: string, required: P, optional?: O) {
  const inner = optional ? t.intersection([t.type(required), t.partial(optional)]) : t.type(required);
  const known = new Set([...Object.keys(required), ...Object.keys(optional ?? {})]);
  return new t.Type<t.TypeOf<t.TypeC<P>> & Partial<t.TypeOf<t.TypeC<O>>>, unknown, unknown>(
    name,
    (u): u is t.TypeOf<t.TypeC<P>> & Partial<t.TypeOf<t.TypeC<O>>> => inner.is(u) && Object.keys(u as object).every((k) => known.has(k)),
    (u, c) => {
      if (typeof u === "object" && u !== null && !Array.isArray(u)) {
        const extra = Object.keys(u).find((k) => !known.has(k));
        if (extra !== undefined) return t.failure((u as Record<string, unknown>)[extra], t.appendContext(c, extra, t.never), `no field "${extra}" (known: ${[...known].join(", ") || "none"})`);
      }
      return inner.validate(u, c) as t.Validation<t.TypeOf<t.TypeC<P>> & Partial<t.TypeOf<t.TypeC<O>>>>;
    },
    (a) => a,
  );
}

export const JobStateCodec = t.keyof(Object.fromEntries(JobStates.map((s) => [s, null])) as Record<(typeof JobStates)[number], null>, "JobState");

const Empty = strict("EmptyRequest", {});
/** Any verb's reply when the job could not handle the request (bad request, handler failure). */
export const FailureReport = t.type({ error: t.string }, "FailureReport");
export type FailureReport = t.TypeOf<typeof FailureReport>;
/** The answer to stop, cancel, checkpoint and fail-subtask: whether it was accepted (and why not). */
export const Ack = t.intersection([t.type({ ok: t.boolean }), t.partial({ state: JobStateCodec, error: t.string })], "Ack");
export type Ack = t.TypeOf<typeof Ack>;
/** The answer to advance-clock: the job's processing time after the move (ms since the epoch), or why it did not move. */
export const ClockReply = t.intersection([t.type({ ok: t.boolean }), t.partial({ now: t.number, error: t.string })], "ClockReply");
export type ClockReply = t.TypeOf<typeof ClockReply>;

const JobFailureCodec = t.intersection([t.type({ at: t.string, error: t.string, restarted: t.boolean }), t.partial({ subtask: t.string })]);
/**
 * The status object. The fields clients read are checked; subtasks and checkpoint statistics keep the
 * shape actors/job/job-status.ts gives them (t.type keeps fields it does not name).
 */
const StatusShape = t.intersection([
  t.type({
    job: t.string, state: JobStateCodec, attempt: t.string, startedAt: t.string, uptimeMs: t.number, parallelism: t.number,
    recordsIn: t.number, recordsOut: t.number, deadLetters: t.number, restarts: t.number, restartStrategy: t.string,
    failures: t.array(JobFailureCodec), subtasks: t.array(t.UnknownRecord),
  }),
  t.partial({ natsReplicas: t.number, mode: t.string, backlogSorted: t.boolean, failure: t.string, nextRestartAt: t.string, nextRestartDelayMs: t.number, restoredFrom: t.number, checkpoints: t.UnknownRecord }),
], "JobStatus");
export const StatusReply = StatusShape as unknown as t.Type<JobStatus, unknown, unknown>;

/** Every verb's request and reply. */
export const ControlProtocol = {
  [ControlVerb.Status]: { request: Empty, reply: StatusReply },
  [ControlVerb.Stop]: { request: strict("StopRequest", {}, { savepoint: t.boolean }), reply: Ack },
  [ControlVerb.Cancel]: { request: Empty, reply: Ack },
  [ControlVerb.Checkpoint]: { request: Empty, reply: Ack },
  [ControlVerb.FailSubtask]: { request: strict("FailSubtaskRequest", { subtask: t.string }), reply: Ack },
  [ControlVerb.AdvanceClock]: { request: strict("AdvanceClockRequest", { ms: t.number }), reply: ClockReply },
} as const;
export type ControlRequest<V extends ControlVerb> = t.TypeOf<(typeof ControlProtocol)[V]["request"]>;
export type ControlReply<V extends ControlVerb> = t.TypeOf<(typeof ControlProtocol)[V]["reply"]>;

/** Every running job answers `weir.jobs.ping` with this (discovery for `weir status`). */
export const PingReply = t.type({ job: t.string, state: JobStateCodec, attempt: t.string, startedAt: t.string }, "PingReply");
export type PingReply = t.TypeOf<typeof PingReply>;

/** Published once on `weir.<job>.ended` as the job ends: `weir stop` learns from it how it ended. */
export const JobEnded = t.intersection([t.type({ job: t.string, state: JobStateCodec, attempt: t.string }), t.partial({ failure: t.string })], "JobEnded");
export type JobEnded = t.TypeOf<typeof JobEnded>;

/**
 * What a subtask reports to its job coordinator. Within one process these are calls (SubtaskDeps' onAck,
 * onDecline, onFailed, onFinished); a coordinator in another process receives them as these messages.
 */
const SnapshotShape = t.intersection([
  t.type({
    vertexUid: t.string, index: t.number, parallelism: t.number, operators: t.UnknownRecord, ackedAtMs: t.number, alignmentMs: t.number,
    stateChanged: t.type({ entries: t.number, bytes: t.number }),
  }),
  t.partial({ keyed: t.type({ operators: t.array(t.string), snapshots: t.array(t.UnknownRecord) }), quiet: t.boolean }),
], "SubtaskSnapshot");
export const SubtaskReportKind = { Ack: "ack", Decline: "decline", Failed: "failed", Finished: "finished" } as const;
const SUBTASK_REPORTS = {
  [SubtaskReportKind.Ack]: strict("AckReport", { kind: t.literal("ack"), subtask: t.string, checkpointId: t.number, snapshot: SnapshotShape }),
  [SubtaskReportKind.Decline]: strict("DeclineReport", { kind: t.literal("decline"), subtask: t.string, checkpointId: t.number, reason: t.string }),
  [SubtaskReportKind.Failed]: strict("FailedReport", { kind: t.literal("failed"), subtask: t.string, error: t.string }),
  [SubtaskReportKind.Finished]: strict("FinishedReport", { kind: t.literal("finished"), subtask: t.string }),
} as const;
export type SubtaskReport = t.TypeOf<(typeof SUBTASK_REPORTS)[keyof typeof SUBTASK_REPORTS]>;

/** A subtask's report, checked against the codec of its `kind` (so an error names the field at fault). */
export function decodeSubtaskReport(data: Uint8Array, what: string): SubtaskReport {
  const value = parseBody(data, what);
  const kind = (value as { kind?: unknown }).kind;
  if (typeof kind !== "string" || !Object.hasOwn(SUBTASK_REPORTS, kind)) {
    throw new WeirError(ErrorCode.Transport, `${what}: kind: expected one of ${Object.keys(SUBTASK_REPORTS).join(", ")}, got ${JSON.stringify(kind) ?? "nothing"}`);
  }
  return decodeValue(SUBTASK_REPORTS[kind as keyof typeof SUBTASK_REPORTS] as t.Type<SubtaskReport, unknown, unknown>, value, what);
}

/**
 * Decodes a message body (JSON; an empty body is `{}`) with `codec`, or throws one line naming `what`
 * and the field at fault.
 */
export function decodeMessage<A>(codec: t.Type<A, unknown, unknown>, data: Uint8Array, what: string): A {
  return decodeValue(codec, parseBody(data, what), what);
}

/** A verb's reply, or the job's failure report for it. */
export function decodeReply<V extends ControlVerb>(verb: V, data: Uint8Array, job: string): ControlReply<V> | FailureReport {
  const what = `job ${job}'s reply to ${verb}`;
  const value = parseBody(data, what);
  if (isFailureReport(value)) return value;
  return decodeValue(ControlProtocol[verb].reply as t.Type<ControlReply<V>, unknown, unknown>, value, what);
}

export function isFailureReport(x: unknown): x is FailureReport {
  return typeof x === "object" && x !== null && typeof (x as { error?: unknown }).error === "string" && !("ok" in x) && !("job" in x);
}

export function encodeMessage(value: unknown): string {
  return JSON.stringify(value);
}

function parseBody(data: Uint8Array, what: string): unknown {
  if (data.length === 0) return {};
  const text = new TextDecoder().decode(data);
  try {
    return JSON.parse(text);
  } catch {
    throw new WeirError(ErrorCode.Transport, `${what}: not JSON (${text.length > 60 ? `${text.slice(0, 57)}...` : text})`);
  }
}

/** `value` (parsed already) checked with `codec`, or one line naming `what` and the field at fault. */
export function decodeValue<A>(codec: t.Type<A, unknown, unknown>, value: unknown, what: string): A {
  const r = codec.decode(value);
  if (isLeft(r)) throw new WeirError(ErrorCode.Transport, `${what}: ${describeErrors(r.left)}`);
  return r.right;
}
