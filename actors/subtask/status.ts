// What `weir status` shows of one subtask: its lifecycle state from the actor, counters of the record
// path, and each operator's own metrics.

import type { JobVertex } from "../../runtime/graph/job-graph.ts";
import { MIN_WATERMARK } from "../../runtime/transport/frames.ts";
import type { SubtaskParts } from "./parts.ts";

export interface SubtaskStatus {
  readonly id: string;
  readonly vertex: number;
  readonly name: string;
  readonly index: number;
  readonly state: string;
  readonly recordsIn: number;
  readonly recordsOut: number;
  readonly watermark: number | null;
  readonly backpressuredMs: number;
  readonly queuedFrames: number;
  readonly pendingFrames: number;
  readonly deadLetters: number;
  readonly isBacklog: boolean;
  readonly error?: string;
  readonly operators: Record<string, Record<string, number>>;
}

export function subtaskStatus(parts: SubtaskParts, vertex: JobVertex, index: number, deadLetters: number): SubtaskStatus {
  const operators: Record<string, Record<string, number>> = {};
  for (const { node, operator } of parts.chain.operators) {
    const m = operator.metrics?.();
    if (m) operators[node.name] = m;
  }
  const recordsOut = parts.outputs.recordsSent + Object.values(operators).reduce((n, m) => n + (m.recordsOut ?? 0), 0);
  const { counters, lifecycle } = parts;
  const error = lifecycle.error;
  return {
    id: parts.id,
    vertex: vertex.id,
    name: vertex.name,
    index,
    state: lifecycle.description,
    recordsIn: counters.recordsIn,
    recordsOut,
    watermark: counters.currentWatermark === MIN_WATERMARK ? null : counters.currentWatermark,
    backpressuredMs: Math.round(parts.outputs.backpressuredMs),
    queuedFrames: parts.gate.queuedFrames,
    pendingFrames: parts.outputs.pendingFrames,
    deadLetters,
    isBacklog: parts.attributes.isBacklog,
    ...(error !== undefined ? { error } : {}),
    operators,
  };
}
