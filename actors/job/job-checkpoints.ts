// The job's checkpoint storage at start (the store, the coordinator with its block of ids, what to
// restore) and the final checkpoint of FLIP-147, apart from the job runner's lifecycle.

import type { NatsConnection } from "@nats-io/transport-node";
import type { ResolvedJobOptions } from "../../runtime/contracts/job-options.ts";
import { ErrorCode, WeirError, messageOf } from "../../runtime/core/errors.ts";
import type { JobGraph } from "../../runtime/graph/job-graph.ts";
import type { JobNames } from "../../runtime/core/names.ts";
import { CheckpointCoordinator, ID_BLOCK, type CheckpointTarget } from "../checkpoint/coordinator.ts";
import type { CheckpointKind } from "../../runtime/checkpoint/metadata.ts";
import { RestoreBundle } from "../../runtime/checkpoint/restore.ts";
import { CheckpointStore } from "../../runtime/checkpoint/store.ts";
import type { Clock } from "../../runtime/core/clock.ts";
import { sleep } from "./connection-watch.ts";
import { eraseOperatorState } from "../../state/factory.ts";
import { checkStateBackend, checkStateLayouts } from "./restore-checks.ts";

const FINAL_CHECKPOINT_ATTEMPTS = 3;

export interface JobCheckpoints {
  readonly store?: CheckpointStore;
  readonly coordinator?: CheckpointCoordinator;
  readonly restore?: RestoreBundle;
}

export interface OpenCheckpointsOptions {
  readonly nc: NatsConnection;
  readonly names: JobNames;
  readonly graph: JobGraph;
  readonly job: ResolvedJobOptions;
  readonly targets: () => readonly CheckpointTarget[];
  readonly log: (message: string) => void;
  readonly clock: Clock;
  /** With workers: records each commit in the job log as leader, so a deposed leader cannot commit. */
  readonly fence?: (checkpointId: number) => Promise<void>;
  /** A commit refused: `latest` is not where this run left it (CoordinatorOptions.onCommitRefused). */
  readonly onCommitRefused?: (e: Error) => void;
  /** More checkpoint timeouts in a row than tolerated (CoordinatorOptions.onStalled). */
  readonly onStalled?: (e: Error) => void;
  /** `job.restore` is a checkpoint the job log recorded as committed (a takeover): see loadRestore. */
  readonly restoreCommitted?: boolean;
  /** The run's lineage as each checkpoint records it (CoordinatorOptions.lineage). */
  readonly lineage?: () => string;
}

/**
 * A run that starts with `restore: "none"`: without the keyed state a previous run left in KV, and without
 * the checkpoints that refer to it as the latest (a later run would fail restoring one).
 */
export async function startWithoutState(nc: NatsConnection, names: JobNames, resetState: () => Promise<void>): Promise<void> {
  await resetState();
  await (await CheckpointStore.openExisting(nc, names))?.forgetLatest();
}

/** Opens the store when checkpoints are on (or one is to be restored), reserves ids, finds what to restore. */
export async function openCheckpoints(o: OpenCheckpointsOptions): Promise<JobCheckpoints> {
  const { job } = o;
  const checkpointing = job.checkpointIntervalMs > 0;
  if (!checkpointing && typeof job.restore !== "number") return {};
  const store = await CheckpointStore.open(o.nc, o.names);
  const latest = await store.latest();
  let coordinator: CheckpointCoordinator | undefined;
  if (checkpointing) {
    const ids = await store.reserveIds(latest?.pointer.id ?? 0, ID_BLOCK);
    coordinator = new CheckpointCoordinator(o.targets, {
      job: job.name,
      store,
      firstId: ids.first,
      reservedThrough: ids.last,
      latestRevision: latest?.revision ?? 0,
      maxParallelism: o.graph.maxParallelism,
      parallelism: Object.fromEntries(o.graph.vertices.map((v) => [v.uid, v.parallelism])),
      timeoutMs: job.checkpointTimeoutMs,
      tolerableTimeouts: job.tolerableCheckpointTimeouts,
      retain: job.checkpointsRetained,
      log: o.log,
      clock: o.clock,
      ...(o.fence ? { fence: o.fence } : {}),
      ...(o.onCommitRefused ? { onCommitRefused: o.onCommitRefused } : {}),
      ...(o.onStalled ? { onStalled: o.onStalled } : {}),
      ...(o.lineage ? { lineage: o.lineage } : {}),
      ...(job.inspect ? { inspect: job.inspect } : {}),
    });
  }
  let restore: RestoreBundle | undefined;
  try {
    restore = await loadRestore(store, job, job.restore, latest?.pointer.id, o.restoreCommitted ? { clock: o.clock, log: o.log } : undefined);
    if (restore) {
      checkMaxParallelism(restore, o.graph);
      checkStateBackend(restore, job);
      checkStateLayouts(restore, o.graph);
      const dropped = checkOperatorsKept(restore, o.graph, job.allowNonRestoredState, o.log);
      // Dropped for good: KV would hand that state back to an operator of the same uid added later.
      if (job.stateBackend === "jetstream-kv") for (const uid of dropped) await eraseOperatorState(o.nc, o.names, uid);
    }
  } catch (e) {
    await coordinator?.stop();
    throw e;
  }
  if (restore) o.log(`restoring from ${restore.checkpoint.kind} ${restore.id}`);
  return { store, ...(coordinator ? { coordinator } : {}), ...(restore ? { restore } : {}) };
}

/** The answer to a checkpoint or savepoint asked of a job that takes none: why, and the way out. */
export function checkpointsOff(job: ResolvedJobOptions, asked: string): WeirError {
  return new WeirError(ErrorCode.Checkpoint, `${asked}: ${job.mode === "batch" ? `this job runs in mode "batch", which takes none` : "set checkpointIntervalMs (or --checkpoint-interval)"}`);
}

/**
 * The checkpoint `mode` names (`latestId` for "latest"), or undefined for none. `committed`: `mode` is a
 * checkpoint the job log recorded as committed (a takeover), so a read that misses it is read again.
 */
export async function loadRestore(
  store: CheckpointStore | undefined, job: ResolvedJobOptions, mode: ResolvedJobOptions["restore"], latestId: number | undefined,
  committed?: { readonly clock: Clock; readonly log: (message: string) => void },
): Promise<RestoreBundle | undefined> {
  if (mode === "none" || !store) return undefined;
  if (job.checkpointIntervalMs <= 0) {
    throw new WeirError(ErrorCode.Checkpoint, job.mode === "batch"
      ? `restoring checkpoint ${mode}: this job runs in mode "batch", which takes no checkpoints and restores none (run it with --restore none, or in mode "streaming" with checkpointIntervalMs)`
      : `restoring checkpoint ${mode} needs checkpointing on: set checkpointIntervalMs (or --checkpoint-interval)`);
  }
  const id = mode === "latest" ? latestId : mode;
  if (id === undefined) return undefined;
  let metadata = await store.read(id);
  // Committed for sure (the job log says so): a read that misses it met a stream leader still behind.
  if (!metadata && committed) {
    committed.log(`checkpoint ${id} of job ${job.name} is not in ${store.bucket} yet, though the job log recorded its commit (a stream leader behind, an election?): reading again for up to ${LATEST_BEHIND_WAIT_MS / 1000} s`);
    const deadline = committed.clock.now() + LATEST_BEHIND_WAIT_MS;
    while (!metadata && committed.clock.now() < deadline) {
      await sleep(committed.clock, LATEST_BEHIND_RETRY_MS);
      metadata = await store.read(id);
    }
  }
  if (!metadata) {
    if (mode === "latest") return undefined;
    throw new WeirError(ErrorCode.Checkpoint, `checkpoint ${id} of job ${job.name} does not exist (see weir checkpoints ${job.name})`);
  }
  return new RestoreBundle(metadata);
}

/**
 * A checkpoint whose state belongs to an operator the job no longer has (its uid changed, or it was
 * removed) is refused, as Flink refuses state it cannot map: restoring the rest would drop that state
 * without a word.
 */
function checkOperatorsKept(restore: RestoreBundle, graph: JobGraph, allowNonRestored: boolean, log: (m: string) => void): string[] {
  const uids = new Set(graph.vertices.flatMap((v) => v.nodes.map((n) => n.uid)));
  const missing = restore.operatorUids().filter((uid) => !uids.has(uid));
  if (missing.length === 0) return [];
  const what = `${restore.checkpoint.kind} ${restore.id} holds state of operator uid${missing.length > 1 ? "s" : ""} ${missing.map((u) => `"${u}"`).join(", ")}, which this job does not have`;
  if (allowNonRestored) {
    log(`${what}: that state is dropped (allowNonRestoredState)`);
    return missing;
  }
  throw new WeirError(ErrorCode.Restore, `${what} (a uid changed, or the operator was removed): give the operator its old uid, set allowNonRestoredState to drop that state, or start without state (--restore none)`);
}

/**
 * Keyed state is laid out in key groups of the job's maxParallelism: restored under another one, keys
 * land in groups their subtask does not own (Flink refuses such a restore likewise).
 */
function checkMaxParallelism(restore: RestoreBundle, graph: JobGraph): void {
  const was = restore.checkpoint.maxParallelism;
  if (was === undefined || was === graph.maxParallelism) return;
  throw new WeirError(ErrorCode.Restore, `${restore.checkpoint.kind} ${restore.id} was taken with maxParallelism ${was}, and this job has ${graph.maxParallelism}: keyed state cannot move to other key groups; set maxParallelism back to ${was}, or start without state (--restore none)`);
}

/** How long a restart reads `latest` again while it is behind what this run committed (latestVerdict). */
export const LATEST_BEHIND_WAIT_MS = 60_000;
const LATEST_BEHIND_RETRY_MS = 1000;
/** A failed read of `latest` during a NATS outage is tried again this often. */
const LATEST_CHECKPOINT_RETRY_MS = 500;

export interface RestartPointContext {
  readonly store: CheckpointStore | undefined;
  readonly coordinator: CheckpointCoordinator | undefined;
  readonly job: ResolvedJobOptions;
  readonly bucket: string;
  readonly clock: Clock;
  readonly log: (message: string) => void;
  /** Resolves once NATS is back for a restart. */
  readonly ready: () => Promise<void>;
  /** Whether a failed read is worth trying again (a NATS outage while the job still restarts). */
  readonly retryable: () => boolean;
  /** What the run started from, and `latest`'s revision then: until a newer checkpoint commits, a restart goes back to it. */
  readonly start: { readonly revision: number; readonly restore: RestoreBundle | undefined };
}

/**
 * The checkpoint a restart goes on from (undefined: none), read once NATS is back (JetStream may answer
 * late at first): the latest, or, while none has committed since the run started, what the run started
 * from (as Flink's restart goes back to the savepoint a job started from; `--restore none`: nothing).
 */
export async function restartPoint(c: RestartPointContext): Promise<RestoreBundle | undefined> {
  const behind: { since?: number } = {};
  for (;;) {
    await c.ready();
    let refused: WeirError | undefined;
    try {
      const latest = await c.store?.latest();
      const verdict = c.coordinator ? latestVerdict(c.coordinator, latest?.revision ?? 0, c.bucket, behind, c.clock.now(), c.log) : "ok";
      if (verdict === "behind") {
        await sleep(c.clock, LATEST_BEHIND_RETRY_MS);
        continue;
      }
      if (verdict instanceof WeirError) refused = verdict;
      else {
        const found = latest?.revision ?? 0;
        const restore = found <= c.start.revision ? c.start.restore : await loadRestore(c.store, c.job, "latest", latest?.pointer.id);
        c.coordinator?.restartFrom(found);
        return restore;
      }
    } catch (e) {
      if (!c.retryable()) throw e;
      c.log(`restart: reading the latest checkpoint from ${c.bucket} failed (${messageOf(e)}); retrying`);
      await sleep(c.clock, LATEST_CHECKPOINT_RETRY_MS);
    }
    if (refused) throw refused;
  }
}

/**
 * Whether a restart may go on from `latest` read at revision `found` (0: none). Behind the revision this
 * run's coordinator wrote, it would publish committed output again and every later commit would be
 * refused. nats-server before 2.11 lets a newly elected stream leader answer before it has applied its log
 * (nats-io/nats-server#6485), and 2.9.10 was seen electing a replica that lacked acknowledged writes
 * (tests/cluster-failover, kill-each: a restart read no checkpoint at all). "behind": read again, until
 * LATEST_BEHIND_WAIT_MS after `behind.since`; then the restart is refused (the error). A `latest` ahead of
 * ours (written by another run of the job) is restarted from, as a new run would.
 */
export function latestVerdict(coordinator: CheckpointCoordinator, found: number, bucket: string, behind: { since?: number }, now: number, log: (message: string) => void): "ok" | "behind" | WeirError {
  const ours = coordinator.latestRevision;
  if (found >= ours) return "ok";
  const id = coordinator.stats().lastCompleted?.id;
  const what = `the latest checkpoint of ${bucket} reads as ${found ? `revision ${found}` : "none"}, but this run ${id !== undefined ? `committed checkpoint ${id} at` : "saw"} revision ${ours}`;
  if (behind.since === undefined) {
    behind.since = now;
    log(`restart: ${what}; the bucket's stream leader is behind (an election?): reading again for up to ${LATEST_BEHIND_WAIT_MS / 1000} s`);
  }
  if (now - behind.since < LATEST_BEHIND_WAIT_MS) return "behind";
  return new WeirError(ErrorCode.Checkpoint, `restart refused: ${what} (still after ${LATEST_BEHIND_WAIT_MS / 1000} s): the NATS server lost acknowledged writes; a restart from older state would publish committed output again`);
}

/**
 * FLIP-147: once every subtask's input ended, one more checkpoint holds the final state (a few attempts,
 * while `current()`: false once the job restarted, whose new subtasks this must not checkpoint).
 * Resolves true once taken, false when no longer current.
 */
export async function takeFinalCheckpoint(coordinator: CheckpointCoordinator, kind: CheckpointKind, log: (m: string) => void, current: () => boolean): Promise<boolean> {
  for (let attempt = 1; ; attempt++) {
    try {
      await coordinator.idle();
      if (!current()) return false;
      const id = await coordinator.trigger(kind);
      log(`final ${kind} ${id} completed`);
      return true;
    } catch (e) {
      if (!current()) return false;
      log(`final ${kind} failed (attempt ${attempt}/${FINAL_CHECKPOINT_ATTEMPTS}): ${messageOf(e)}`);
      if (attempt >= FINAL_CHECKPOINT_ATTEMPTS) throw new WeirError(ErrorCode.Checkpoint, `the final ${kind} could not be taken: ${messageOf(e)}`, { cause: e });
    }
  }
}
