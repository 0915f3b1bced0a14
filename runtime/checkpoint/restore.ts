// From a completed checkpoint to what each new subtask restores: every state is looked up by operator
// uid (not by subtask), so a job restored at another parallelism finds all of it and each component
// takes its share (a JetStream source its subjects' offsets, a keyed backend its key groups).

import type { StateSnapshot } from "../../state/contracts.ts";
import type { CheckpointMetadata } from "./metadata.ts";

export type { RestoredPart };

import type { RestoredPart } from "../contracts/connectors.ts";

export class RestoreBundle {
  private readonly operatorStates = new Map<string, RestoredPart[]>();
  private readonly keyed = new Map<string, StateSnapshot[]>();

  constructor(readonly checkpoint: CheckpointMetadata) {
    for (const s of checkpoint.subtasks) {
      for (const [uid, state] of Object.entries(s.operators)) {
        const parts = this.operatorStates.get(uid) ?? [];
        parts.push({ index: s.index, parallelism: s.parallelism, state });
        this.operatorStates.set(uid, parts);
      }
      if (s.keyed) {
        for (const uid of s.keyed.operators) {
          const snaps = this.keyed.get(uid) ?? [];
          snaps.push(...s.keyed.snapshots);
          this.keyed.set(uid, snaps);
        }
      }
    }
  }

  get id(): number { return this.checkpoint.id; }

  /** The run the checkpoint belongs to; "" for one taken before lineages were recorded (metadata.ts). */
  get lineage(): string { return typeof this.checkpoint.lineage === "string" ? this.checkpoint.lineage : ""; }

  /** Uids of the operators whose state the checkpoint holds (operator state or keyed state). */
  operatorUids(): string[] {
    return [...new Set([...this.operatorStates.keys(), ...this.keyed.keys()])].sort();
  }

  /** Every old subtask's state of operator `uid`, ordered by old subtask index. */
  statesOf(uid: string): RestoredPart[] {
    return [...(this.operatorStates.get(uid) ?? [])].sort((a, b) => a.index - b.index);
  }

  /** Keyed state snapshots covering any of `uids` (deduplicated). */
  keyedSnapshotsOf(uids: readonly string[]): StateSnapshot[] {
    const out = new Set<StateSnapshot>();
    for (const uid of uids) for (const s of this.keyed.get(uid) ?? []) out.add(s);
    return [...out];
  }
}
