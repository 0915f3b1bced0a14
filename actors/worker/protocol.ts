// What the leading worker (job and checkpoint coordinators) and the other workers of a job say to each
// other, as io-ts codecs in one place: commands to one worker on `<workerInbox>.cmd`, and the reports of
// the subtasks it runs on `weir.<job>.leader.reports`. Every message carries the epoch of the deployment
// it belongs to: a worker obeys only the epoch it runs, and the leader ignores reports of any other, so a
// worker cut off and back can neither corrupt the running deployment nor be confused by it.

import * as t from "io-ts";
import { packJson, packJsonAgainst, unpackJson, unpackJsonText, type PackedMessage, type PackedReferences } from "../../runtime/cluster/packed-json.ts";
import { decodeMessage, decodeValue, encodeMessage } from "../job/control-protocol.ts";

const Barrier = t.type({ id: t.number, timestamp: t.number, kind: t.keyof({ checkpoint: null, savepoint: null }) }, "CheckpointBarrier");

export const WorkerCommandKind = {
  Deploy: "deploy",
  Run: "run",
  Trigger: "trigger",
  Complete: "complete",
  Abort: "abort",
  StopSources: "stop-sources",
  Release: "release",
  Cancel: "cancel",
  Fail: "fail",
  Regrant: "regrant",
  Refuse: "refuse",
  Spare: "spare",
  AdvanceClock: "advance-clock",
} as const;

const epoch = { epoch: t.number };
export const WorkerCommand = t.union([
  /**
   * Set up and open these subtasks (restoring checkpoint `restoreId`); replies once they are open.
   * `lineage`: the run's, in the dead-letter ids of every worker's subtasks (actors/subtask/dead-letters.ts).
   * `clockMs`: the leader's processing time when the job runs on a manual clock (`weir run --manual-clock`).
   */
  t.type({ kind: t.literal("deploy"), ...epoch, leader: t.string, subtasks: t.array(t.string), restoreId: t.union([t.number, t.null]), lineage: t.string, parallelism: t.union([t.number, t.null]), clockMs: t.union([t.number, t.null]) }),
  /** Run the opened subtasks: first the non-sources (`sources: false`), then the sources; replies. */
  t.type({ kind: t.literal("run"), ...epoch, sources: t.boolean }),
  /** The worker's sources among `subtasks` start checkpoint `barrier.id` (one command per worker and checkpoint). */
  t.type({ kind: t.literal("trigger"), ...epoch, subtasks: t.array(t.string), barrier: Barrier, pause: t.boolean }),
  t.type({ kind: t.literal("complete"), ...epoch, checkpointId: t.number }),
  t.type({ kind: t.literal("abort"), ...epoch, checkpointId: t.number }),
  t.type({ kind: t.literal("stop-sources"), ...epoch }),
  t.type({ kind: t.literal("release"), ...epoch }),
  /** Cancel every subtask of the epoch; replies once they are terminal. */
  t.type({ kind: t.literal("cancel"), ...epoch }),
  t.type({ kind: t.literal("fail"), ...epoch, subtask: t.string, reason: t.string }),
  t.type({ kind: t.literal("regrant"), ...epoch }),
  /** The leader gives this worker no subtasks: it runs another job graph or other options (`reason`). */
  t.type({ kind: t.literal("refuse"), ...epoch, reason: t.string }),
  /** The job runs on, as deployed in `epoch`, on the other workers: this one joined it as a spare (no subtasks). */
  t.type({ kind: t.literal("spare"), ...epoch }),
  /** A manual clock (`weir advance-clock`): processing time moves on to `toMs` here too; replies once its due timers were handed over. */
  t.type({ kind: t.literal("advance-clock"), ...epoch, toMs: t.number }),
], "WorkerCommand");
export type WorkerCommand = t.TypeOf<typeof WorkerCommand>;

/** `code`: the failure's ErrorCode (errorCodeOf), so that the leader decides on a restart as for its own failures. */
export const CommandReply = t.intersection([t.type({ ok: t.boolean }), t.partial({ error: t.string, code: t.string })], "CommandReply");
export type CommandReply = t.TypeOf<typeof CommandReply>;

/** A subtask's status as `weir status` shows it (actors/subtask/status.ts); fields beyond these are kept. */
const SubtaskStatusShape = t.intersection([
  t.type({ id: t.string, state: t.string, recordsIn: t.number, recordsOut: t.number, isBacklog: t.boolean }),
  t.partial({ activeAfter: t.number }),
]);

const from = { ...epoch, worker: t.string };
export const WorkerReport = t.union([
  /** Its subtasks' snapshots of a checkpoint, together (ack-batch.ts), changelog messages as runs (snapshot-wire.ts). */
  t.type({ kind: t.literal("ack"), ...from, checkpointId: t.number, snapshots: t.array(t.UnknownRecord) }),
  t.type({ kind: t.literal("decline"), ...from, subtask: t.string, checkpointId: t.number, reason: t.string }),
  t.intersection([t.type({ kind: t.literal("failed"), ...from, subtask: t.string, error: t.string }), t.partial({ code: t.string })]),
  t.type({ kind: t.literal("finished"), ...from, subtask: t.string }),
  t.type({ kind: t.literal("input-finished"), ...from, subtask: t.string }),
  /** The subtask did something after its snapshot of checkpoint `after`, which found it quiet (actors/subtask/activity.ts). */
  t.type({ kind: t.literal("active"), ...from, subtask: t.string, after: t.number }),
  t.type({ kind: t.literal("dirty-budget"), ...from }),
  /** Its NATS connection is back: commands sent to it meanwhile may be lost. */
  t.type({ kind: t.literal("reconnected"), ...from }),
  /** Every second, and at once when a subtask's lifecycle moves: what `weir status` shows of them. */
  t.type({ kind: t.literal("status"), ...from, subtasks: t.array(SubtaskStatusShape) }),
], "WorkerReport");
export type WorkerReport = t.TypeOf<typeof WorkerReport>;

/**
 * A follower's ping to its leader (actors/worker/state-write-fence.ts): "do you run me in this epoch?".
 * The leader answers `member` or `other`; a ping without a body (the leader's probe of a worker) is answered empty.
 */
export const MembershipPing = t.type({ worker: t.string, epoch: t.number }, "MembershipPing");
export type MembershipPing = t.TypeOf<typeof MembershipPing>;
export const MembershipAnswer = { Member: "member", Other: "other" } as const;

/** Commands and reports travel packed (runtime/cluster/packed-json.ts): a status report shrinks ~4×, an acknowledgement ~2×. */
export function encodeCommand(c: WorkerCommand): Uint8Array {
  return packJson(c);
}
export function decodeCommand(data: Uint8Array, what: string): WorkerCommand {
  return decodeValue(WorkerCommand, unpackJson(data, what), what);
}
export function encodeReport(r: WorkerReport): Uint8Array {
  return packJson(r);
}
/** A report packed against an earlier one's JSON the leader holds (report-packing.ts); `text` is its own, a later reference. */
export function encodeReportAgainst(r: WorkerReport, reference: Uint8Array | undefined): PackedMessage {
  return packJsonAgainst(r, reference);
}
export function decodeReport(data: Uint8Array, what: string): WorkerReport {
  return decodeReportText(data, what).report;
}
/** A report, packed alone or against one of `references` (else a MissingReferenceError), and its JSON text. */
export function decodeReportText(data: Uint8Array, what: string, references?: PackedReferences): { report: WorkerReport; text: Uint8Array } {
  const { value, text } = unpackJsonText(data, what, references);
  return { report: decodeValue(WorkerReport, value, what), text };
}
export function decodeCommandReply(data: Uint8Array, what: string): CommandReply {
  return decodeMessage(CommandReply, data, what);
}
export { encodeMessage };
