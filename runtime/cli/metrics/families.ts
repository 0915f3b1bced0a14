// Every weir metric, as a function of one snapshot of job views (runtime/cli/http/job-view.ts): the
// figures the subtasks, the checkpoint coordinator and the job already keep, read at scrape time. Nothing
// here runs per record. Names follow Prometheus conventions: `weir_` prefix, counters end `_total`, base
// units (seconds, bytes); labels `job_name`, `worker`, and per subtask `operator` (the uid of the chain's
// head operator, as in subtask ids "<uid>#<index>") and `subtask` (its index). No label per key or id.

import type { JobView } from "../http/job-view.ts";
import type { SubtaskStatus } from "../../../actors/subtask/status.ts";
import type { DurationCounts } from "../../checkpoint/durations.ts";
import { JobStates } from "../../../actors/job/machine.ts";

export type MetricType = "counter" | "gauge" | "histogram";
export type Labels = Readonly<Record<string, string>>;
export interface Sample { readonly value: number; readonly labels: Labels; readonly metricName?: string }

export interface Family {
  readonly name: string;
  readonly help: string;
  readonly type: MetricType;
  /** The samples of one snapshot; `worker` scope: every worker; `job` scope: only the leader's view. */
  readonly samples: (views: readonly JobView[]) => Sample[];
}

type SubtaskFigure = (s: SubtaskStatus) => number | null | undefined;

function seconds(ms: number): number;
function seconds(ms: number | undefined): number | undefined;
function seconds(ms: number | null | undefined): number | null | undefined;
function seconds(ms: number | null | undefined): number | null | undefined {
  return ms === null || ms === undefined ? ms : ms / 1000;
}

/** Sum of one figure over the operators of a subtask's chain (undefined when none has it). */
function operatorSum(key: string): SubtaskFigure {
  return (s) => {
    let sum: number | undefined;
    for (const m of Object.values(s.operators)) if (typeof m[key] === "number") sum = (sum ?? 0) + m[key]!;
    return sum;
  };
}

function subtaskLabels(v: JobView, s: SubtaskStatus): Labels {
  const hash = s.id.lastIndexOf("#");
  return { job_name: v.job, worker: v.worker, operator: hash < 0 ? s.id : s.id.slice(0, hash), subtask: String(s.index) };
}

function perSubtask(name: string, type: MetricType, help: string, figure: SubtaskFigure): Family {
  return {
    name, type, help,
    samples: (views) => views.flatMap((v) => v.localSubtasks.flatMap((s) => {
      const value = figure(s);
      return value === null || value === undefined ? [] : [{ value, labels: subtaskLabels(v, s) }];
    })),
  };
}

function perJob(name: string, type: MetricType, help: string, figure: (v: JobView) => Array<{ value: number | undefined; labels?: Labels }>): Family {
  return {
    name, type, help,
    samples: (views) => views.filter((v) => v.leader).flatMap((v) => figure(v).flatMap(({ value, labels }) =>
      (value === undefined ? [] : [{ value, labels: { job_name: v.job, worker: v.worker, ...labels } }]))),
  };
}

function durationHistogram(name: string, v: JobView, d: DurationCounts): Sample[] {
  const base = { job_name: v.job, worker: v.worker };
  let cumulative = 0;
  const out: Sample[] = d.boundsMs.map((bound, i) => {
    cumulative += d.counts[i] ?? 0;
    return { metricName: `${name}_bucket`, labels: { ...base, le: String(bound / 1000) }, value: cumulative };
  });
  out.push({ metricName: `${name}_bucket`, labels: { ...base, le: "+Inf" }, value: d.count });
  out.push({ metricName: `${name}_sum`, labels: base, value: d.sumMs / 1000 });
  out.push({ metricName: `${name}_count`, labels: base, value: d.count });
  return out;
}

export const FAMILIES: readonly Family[] = [
  // ---- every worker: its own subtasks
  perSubtask("weir_operator_records_in_total", "counter", "Records into the subtask (at a source: records read).", (s) => s.recordsIn),
  perSubtask("weir_operator_records_out_total", "counter", "Records out of the subtask (sent downstream, or written by its sinks).", (s) => s.recordsOut),
  perSubtask("weir_subtask_busy_seconds_total", "counter", "Time running, neither idle nor backpressured.", (s) => seconds(s.busyMs)),
  perSubtask("weir_subtask_idle_seconds_total", "counter", "Time waiting for input.", (s) => seconds(s.idleMs)),
  perSubtask("weir_subtask_backpressured_seconds_total", "counter", "Time waiting for credit from downstream.", (s) => seconds(s.backpressuredMs)),
  perSubtask("weir_operator_input_watermark_seconds", "gauge", "The subtask's combined input watermark (Unix time in seconds); absent before the first.", (s) => seconds(s.watermark)),
  perSubtask("weir_operator_output_watermark_seconds", "gauge", "The last watermark the subtask sent downstream (Unix time in seconds); absent before the first.", (s) => seconds(s.watermarkOut)),
  perSubtask("weir_subtask_queued_frames", "gauge", "Input frames received and not yet processed.", (s) => s.queuedFrames),
  perSubtask("weir_subtask_pending_frames", "gauge", "Output frames waiting for credit.", (s) => s.pendingFrames),
  perSubtask("weir_subtask_backlog", "gauge", "1 while the subtask's input is a backlog (RecordAttributes), else 0.", (s) => (s.isBacklog ? 1 : 0)),
  perSubtask("weir_dead_letters_total", "counter", "Records sent to the job's dead-letter subject by the subtask.", (s) => s.deadLetters),
  perSubtask("weir_late_records_dropped_total", "counter", "Records behind the watermark that event-time windows did not assign (dropped, or sent to the late side output).", operatorSum("lateRecords")),
  perSubtask("weir_sink_committed_records_total", "counter", "Records an exactly-once sink published when their checkpoint committed (records_out counts them once handed to it).", operatorSum("committedRecords")),
  perSubtask("weir_source_pending_messages", "gauge", "Messages in the JetStream source's streams not yet read by the subtask.", operatorSum("pendingMessages")),
  perSubtask("weir_state_cache_entries", "gauge", "Entries in the keyed state cache.", operatorSum("cacheEntries")),
  perSubtask("weir_state_cache_bytes", "gauge", "Bytes of the keyed state cache (estimated).", operatorSum("cacheBytes")),
  perSubtask("weir_state_cache_hits_total", "counter", "State reads answered by the cache.", operatorSum("cacheHits")),
  perSubtask("weir_state_cache_misses_total", "counter", "State reads the cache could not answer.", operatorSum("cacheMisses")),
  perSubtask("weir_state_cache_evictions_total", "counter", "Clean entries evicted to keep the cache within its bounds.", operatorSum("cacheEvictions")),
  perSubtask("weir_state_remote_reads_total", "counter", "Keyed state entries read from the KV bucket (misses the backend could not answer by itself).", operatorSum("stateRemoteReads")),
  perSubtask("weir_state_remote_writes_total", "counter", "Writes sent to the KV bucket: entries, deletes, and the per-key-group marker each materialization writes.", operatorSum("stateRemoteWrites")),
  perSubtask("weir_state_writes_fenced", "gauge", "KV writes held by the worker's state write fence: it cannot confirm that it still runs in the job's epoch (a freeze, no word from the leader).", operatorSum("stateWritesFenced")),
  perSubtask("weir_state_dirty_entries", "gauge", "Cached state entries changed and not yet durable.", operatorSum("dirtyEntries")),
  perSubtask("weir_state_dirty_bytes", "gauge", "Bytes of those entries.", operatorSum("dirtyBytes")),
  perSubtask("weir_async_in_flight_records", "gauge", "Keyed records started and not finished (async state).", operatorSum("inFlightRecords")),
  perSubtask("weir_async_blocked_records", "gauge", "Keyed records waiting for an earlier record of their key.", operatorSum("blockingBufferSize")),
  perSubtask("weir_async_state_batches_total", "counter", "Batches of state requests sent to the backend.", operatorSum("batchesSent")),
  perSubtask("weir_async_state_batched_requests_total", "counter", "State requests sent in those batches (divided by the batches: the mean batch size).", operatorSum("batchedRequests")),
  perSubtask("weir_timers", "gauge", "Registered event-time and processing-time timers.", (s) => {
    const e = operatorSum("eventTimers")(s);
    const p = operatorSum("processingTimers")(s);
    return e === undefined && p === undefined ? undefined : (e ?? 0) + (p ?? 0);
  }),
  perSubtask("weir_timers_fired_total", "counter", "Timers fired.", operatorSum("timersFired")),
  {
    name: "weir_worker_leader", type: "gauge", help: "1 if this worker leads the job (job and checkpoint coordination), else 0.",
    samples: (views) => views.map((v) => ({ value: v.leader ? 1 : 0, labels: { job_name: v.job, worker: v.worker } })),
  },
  {
    name: "weir_worker_nats_connected", type: "gauge", help: "1 while this worker's NATS connection is up, 0 while it is down (its subtasks go on through a disconnect).",
    samples: (views) => views.map((v) => ({ value: v.status.natsDisconnectedSince === undefined ? 1 : 0, labels: { job_name: v.job, worker: v.worker } })),
  },
  {
    name: "weir_worker_subtasks", type: "gauge", help: "Subtasks running in this worker.",
    samples: (views) => views.map((v) => ({ value: v.localSubtasks.length, labels: { job_name: v.job, worker: v.worker } })),
  },
  // ---- the leader: the whole job
  perJob("weir_job_restarts_total", "counter", "Restarts of the job from its last checkpoint (after failures, lost workers, NATS outages).", (v) => [{ value: v.status.restarts }]),
  perJob("weir_job_state", "gauge", "1 for the job's current state, 0 for the others.", (v) => JobStates.map((state) => ({ value: v.status.state === state ? 1 : 0, labels: { state } }))),
  perJob("weir_job_nats_connected", "gauge", "1 while the job's NATS connection is up, 0 while it is down (a running job goes on through a disconnect).", (v) => [{ value: v.status.natsDisconnectedSince === undefined ? 1 : 0 }]),
  perJob("weir_job_uptime_seconds", "gauge", "Time since the job started in this leader.", (v) => [{ value: v.status.uptimeMs / 1000 }]),
  perJob("weir_workers", "gauge", "Live workers of the job.", (v) => [{ value: v.status.workers?.length ?? 1 }]),
  perJob("weir_checkpoints_total", "counter", "Checkpoints (and savepoints) by outcome.", (v) => {
    const c = v.status.checkpoints;
    return c ? [{ value: c.completed, labels: { status: "completed" } }, { value: c.aborted, labels: { status: "aborted" } }] : [];
  }),
  perJob("weir_checkpoints_skipped_total", "counter", "Periodic checkpoints skipped because the job was at rest (nothing happened since the last one; checkpointIntervalWhileIdleMs).", (v) => (v.status.checkpoints ? [{ value: v.status.checkpoints.skipped ?? 0 }] : [])),
  perJob("weir_checkpoint_in_progress", "gauge", "1 while a checkpoint is in flight.", (v) => (v.status.checkpoints ? [{ value: v.status.checkpoints.inFlight !== undefined ? 1 : 0 }] : [])),
  perJob("weir_last_checkpoint_size_bytes", "gauge", "State changed by the last completed checkpoint, in bytes.", (v) => [{ value: v.status.checkpoints?.lastCompleted?.bytes }]),
  perJob("weir_last_checkpoint_entries", "gauge", "State entries changed by the last completed checkpoint.", (v) => [{ value: v.status.checkpoints?.lastCompleted?.entries }]),
  perJob("weir_last_checkpoint_duration_seconds", "gauge", "Trigger to commit of the last completed checkpoint.", (v) => [{ value: seconds(v.status.checkpoints?.lastCompleted?.durationMs) }]),
  perJob("weir_last_checkpoint_alignment_seconds", "gauge", "The longest barrier alignment of the last completed checkpoint.", (v) => [{ value: seconds(v.status.checkpoints?.lastCompleted?.alignmentMs) }]),
  perJob("weir_last_checkpoint_age_seconds", "gauge", "Time since the last completed checkpoint was committed.", (v) => {
    const last = v.status.checkpoints?.lastCompleted;
    return [{ value: last ? Math.max(0, Date.now() - last.triggeredAt - last.durationMs) / 1000 : undefined }];
  }),
  {
    name: "weir_checkpoint_duration_seconds", type: "histogram", help: "Trigger to commit of each completed checkpoint.",
    samples: (views) => views.filter((v) => v.leader && v.status.checkpoints?.durations).flatMap((v) => durationHistogram("weir_checkpoint_duration_seconds", v, v.status.checkpoints!.durations!)),
  },
];
