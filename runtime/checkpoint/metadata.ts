// What a completed checkpoint records: per subtask, the source offsets, sink states,
// operator states and references to the keyed state's changelog (never the state itself).

import { randomBytes } from "node:crypto";
import type { StateSnapshot } from "../../state/contracts.ts";

export type CheckpointKind = "checkpoint" | "savepoint";

export interface SubtaskSnapshot {
  readonly vertexUid: string;
  readonly index: number;
  readonly parallelism: number;
  /** Source reader, sink writer and operator states, by operator uid. */
  readonly operators: Readonly<Record<string, unknown>>;
  /** Keyed state: the keyed operators it covers, and the changelog deltas a restore replays (every checkpoint not yet known to be materialized in KV, oldest first). */
  readonly keyed?: { readonly operators: readonly string[]; readonly snapshots: readonly StateSnapshot[] };
  readonly ackedAtMs: number;
  readonly alignmentMs: number;
  readonly stateChanged: { readonly entries: number; readonly bytes: number };
  /**
   * Nothing happened in the subtask since its previous snapshot (actors/subtask/activity.ts): told to the
   * coordinator with the acknowledgement, not stored with the checkpoint.
   */
  readonly quiet?: boolean;
}

export interface CheckpointMetadata {
  readonly job: string;
  readonly id: number;
  readonly kind: CheckpointKind;
  readonly triggeredAt: number;
  readonly completedAt: number;
  readonly maxParallelism: number;
  /** Parallelism of each vertex (by uid) when the checkpoint was taken. */
  readonly parallelism: Readonly<Record<string, number>>;
  readonly subtasks: readonly SubtaskSnapshot[];
  /**
   * The run this checkpoint belongs to, as restores continue it (newLineage): a run started without
   * restoring state begins a new one. Dead-letter ids include it (actors/subtask/dead-letters.ts). Absent
   * in checkpoints taken before lineages were recorded: the empty lineage.
   */
  readonly lineage?: string;
}

/** A new run's lineage (a run that restores nothing): time and randomness, so two runs never share one. */
export function newLineage(): string {
  return Date.now().toString(36) + randomBytes(3).toString("hex");
}

export interface CheckpointSummary {
  readonly id: number;
  readonly kind: CheckpointKind;
  readonly triggeredAt: number;
  readonly durationMs: number;
  readonly entries: number;
  readonly bytes: number;
  readonly alignmentMs: number;
  readonly acks: ReadonlyArray<{ readonly subtask: string; readonly afterMs: number }>;
}

export function summarize(m: CheckpointMetadata): CheckpointSummary {
  return {
    id: m.id,
    kind: m.kind,
    triggeredAt: m.triggeredAt,
    durationMs: m.completedAt - m.triggeredAt,
    entries: m.subtasks.reduce((n, s) => n + s.stateChanged.entries, 0),
    bytes: m.subtasks.reduce((n, s) => n + s.stateChanged.bytes, 0),
    alignmentMs: Math.max(0, ...m.subtasks.map((s) => s.alignmentMs)),
    acks: m.subtasks.map((s) => ({ subtask: `${s.vertexUid}#${s.index}`, afterMs: s.ackedAtMs - m.triggeredAt })),
  };
}
