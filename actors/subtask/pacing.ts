// Flush pacing and buffer debloating (buffer-debloater.ts) for a subtask's run loops: partly filled
// frames go out at least every FLUSH_INTERVAL_MS while records flow, producers are asked for frames
// holding about the target drain time of this subtask's work, and its operators keep no more records in
// flight than that. Called once per frame or batch, never per record.

import type { BufferDebloater } from "../../runtime/transport/buffer-debloater.ts";
import type { SubtaskParts } from "./parts.ts";

/** Records a debloating source reads per poll before its first throughput measurement. */
const INITIAL_SOURCE_POLL = 50;

export function maybeFlush(parts: SubtaskParts): void {
  const now = performance.now();
  const d = parts.debloater;
  if (d?.due(now)) debloat(parts, d, now);
  parts.outputs.flushIfDue(now);
}

export function flushNow(parts: SubtaskParts): void {
  parts.outputs.flush(performance.now());
}

function debloat(parts: SubtaskParts, d: BufferDebloater, now: number): void {
  if (d.sample(now, parts.counters.recordsIn, parts.counters.idleMs)) parts.gate.setRecordsPerFrame(d.recordsPerFrame, true);
  const budget = d.recordsBudget();
  if (budget !== undefined) for (const { operator } of parts.chain.operators) operator.setInFlightBudget?.(budget);
}

/**
 * A debloating source reads no more than its channels can send without waiting (their consumers size
 * the frames and grant the credits), so records do not queue up here ahead of a barrier; a source with
 * no channels (its chain ends in a sink) reads about the target time of its measured rate.
 */
export function sourcePollLimit(parts: SubtaskParts, d: BufferDebloater): number {
  if (parts.outputs.byEdge.size === 0) return d.recordsBudget() ?? INITIAL_SOURCE_POLL;
  return Math.max(1, parts.outputs.sendableRecords());
}
