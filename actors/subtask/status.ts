// What `weir status` shows of one subtask: its lifecycle state from the actor, counters of the record
// path, and each operator's own metrics.

import type { JobVertex } from "../../runtime/graph/job-graph.ts";
import { MIN_WATERMARK } from "../../runtime/transport/frames.ts";
import type { SubtaskParts } from "./parts.ts";
import { LoopWait } from "./wait-report.ts";

export interface SubtaskStatus {
  readonly id: string;
  readonly vertex: number;
  readonly name: string;
  readonly index: number;
  readonly state: string;
  readonly recordsIn: number;
  readonly recordsOut: number;
  /** Records its sinks wrote (a sink chained behind an operator that also sends downstream too; not a cache's writer): the job's `recordsOut` adds these up. */
  readonly sinkRecords?: number;
  readonly watermark: number | null;
  /** The watermark this subtask last sent downstream (null: none yet, or nothing downstream). */
  readonly watermarkOut?: number | null;
  readonly backpressuredMs: number;
  /** Waiting for input (a source: polls that found nothing). */
  readonly idleMs?: number;
  /** Running and neither idle nor backpressured. */
  readonly busyMs?: number;
  readonly queuedFrames: number;
  readonly pendingFrames: number;
  readonly deadLetters: number;
  readonly isBacklog: boolean;
  readonly error?: string;
  /** Active after the snapshot of this checkpoint, which found it quiet (activity.ts): repeated until the next snapshot. */
  readonly activeAfter?: number;
  readonly operators: Record<string, Record<string, number>>;
}

/** `runningMs`: since the subtask began to run (0 before). `source`: the source reader's own metrics. */
export function subtaskStatus(parts: SubtaskParts, vertex: JobVertex, index: number, deadLetters: number, runningMs: number, source?: Record<string, number>): SubtaskStatus {
  const operators: Record<string, Record<string, number>> = {};
  let sinkRecords = 0;
  for (const { node, operator } of parts.chain.operators) {
    const m = operator.metrics?.();
    if (m) operators[node.name] = m;
    // A cached stream's writer (DataStream.cache) is the environment's store, not one of the job's sinks.
    if (node.kind === "sink" && node.sink.kind !== "cache") sinkRecords += m?.recordsOut ?? 0;
  }
  if (source) operators[vertex.nodes[0]!.name] = source;
  const recordsOut = parts.outputs.recordsSent + Object.values(operators).reduce((n, m) => n + (m.recordsOut ?? 0), 0);
  const { counters, lifecycle } = parts;
  const error = lifecycle.error;
  // A wait in progress counts already (added to the counters only when it ends, it would count as busy
  // until then, and busy would drop when it ended). Each wait's own count starts before its report does.
  const wait = parts.wait.waitingOn;
  const waited = wait === undefined ? 0 : performance.now() - parts.wait.waitingSince;
  const idleMs = Math.round(counters.idleMs + (wait === LoopWait.Input || wait === LoopWait.IdlePoll ? waited : 0));
  const backpressuredMs = Math.round(parts.outputs.backpressuredMs + (wait === LoopWait.Credit ? waited : 0));
  // What is left is busy; never less than reported before (a source's empty poll counts as idle once it ends).
  counters.busyReportedMs = Math.max(counters.busyReportedMs, Math.round(runningMs) - idleMs - backpressuredMs);
  const out = parts.outputs.watermarkOut;
  const activeAfter = parts.activity.activeAfter;
  return {
    id: parts.id,
    vertex: vertex.id,
    name: vertex.name,
    index,
    state: lifecycle.description,
    recordsIn: counters.recordsIn,
    recordsOut,
    sinkRecords,
    watermark: counters.currentWatermark === MIN_WATERMARK ? null : counters.currentWatermark,
    watermarkOut: out === undefined || out === MIN_WATERMARK ? null : out,
    backpressuredMs,
    idleMs,
    busyMs: counters.busyReportedMs,
    queuedFrames: parts.gate.queuedFrames,
    pendingFrames: parts.outputs.pendingFrames,
    deadLetters,
    // A source's backlog is what its reader says (the lifecycle hears it), not an input's attributes.
    isBacklog: parts.attributes.isBacklog || lifecycle.isBacklog || lifecycle.isSorting,
    ...(error !== undefined ? { error } : {}),
    ...(activeAfter !== undefined ? { activeAfter } : {}),
    operators,
  };
}
