// What travels in band beside records, as sources, operators and the checkpoint code see it (types
// only); runtime/transport/frames.ts encodes them on the wire.

export interface RecordAttributes {
  readonly isBacklog: boolean;
}

export interface CheckpointBarrier {
  readonly id: number;
  readonly timestamp: number;
  /** "checkpoint" or "savepoint" (a savepoint is a checkpoint the user asked for, kept until deleted). */
  readonly kind: "checkpoint" | "savepoint";
}
