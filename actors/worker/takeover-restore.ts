// What a worker restores when it leads a run that is already live (JobWorker.restoreOnLeading): the job
// log says what the run committed, not the checkpoint bucket's `latest`. And the lineage a new run
// continues when the run before it died.

import type { ResolvedJobOptions } from "../../runtime/contracts/job-options.ts";
import type { Takeover } from "./takeover-history.ts";

type Restore = ResolvedJobOptions["restore"];

/**
 * What a new leader restores, and how it took over a live run (takeover-history.ts), if it did, with the
 * run's lineage its job log recorded (a restore of nothing continues it: the run's dead letters so far keep their ids).
 */
export interface LeaderRestore { readonly restore: Restore; readonly lineage?: string; readonly takeover?: Takeover }

/** A job log record as read back: what it says and when the stream stored it. */
export interface StoredRecord<R> {
  readonly record: R;
  readonly storedAt: Date;
}

/**
 * A live run's new leader continues it, as Flink's failover continues from its completed-checkpoint
 * store: from the checkpoint the log recorded as committed after the last deployment, else from what that
 * deployment restored. Every commit is appended to the log (read from its stream leader) before `latest`
 * moves, so the log is never behind `latest`; a newly elected leader of the checkpoint bucket can answer
 * with an older `latest` (nats-server before 2.11, nats-io/nats-server#6485), and restoring that would
 * count input again over state already written to KV, or publish committed output again. With nothing
 * committed or restored: `none` for a run started from `none` or an id (its output so far was never
 * committed; `none` again would wipe the run's state and replay its input into committed output),
 * `latest` for one started from `latest` (its deployment found no checkpoint).
 */
export function takeoverRestore(
  requested: Restore,
  deploy: StoredRecord<{ readonly restoreId?: number }>,
  commit: StoredRecord<{ readonly checkpointId: number }> | undefined,
): Restore {
  if (commit !== undefined && commit.storedAt.getTime() >= deploy.storedAt.getTime()) return commit.record.checkpointId;
  return deploy.record.restoreId ?? (requested === "latest" ? "latest" : "none");
}

/** The log line of a takeover that restores `restore` instead of what the run was started with. */
export function takeoverLine(restore: Restore, requested: Restore): string {
  const what = restore === "none" ? "nothing (no checkpoint committed since its start)" : `checkpoint ${String(restore)}`;
  return `taking over the running job: restoring ${what}${requested === "latest" ? ", the last its job log recorded" : ` rather than --restore ${requested}`}`;
}

/**
 * For a new run started with `--restore latest` (the default): the lineage of the run before it when that
 * run died (killed, its machine lost: no end in the log after its deployment). Its dead letters were
 * published as it read, and no checkpoint covers what it read; a run that then finds no checkpoint reads
 * the same records again, so it continues that lineage and their letters are stored once (the runner uses
 * it only when it restores nothing: a restored checkpoint brings its own). Not after a run that ended (a new
 * run of a finished or stopped job is its own), nor without checkpoints (every run reads its input again as
 * its own).
 */
export function diedRunLineage(
  checkpointing: boolean,
  deploy: StoredRecord<{ readonly lineage?: string }>,
  end: StoredRecord<unknown> | undefined,
): string | undefined {
  if (!checkpointing || (end !== undefined && end.storedAt.getTime() >= deploy.storedAt.getTime())) return undefined;
  return deploy.record.lineage;
}
