// Whether the job is at rest, for the periodic schedule (scheduler.ts): the last completed checkpoint
// found every subtask quiet (nothing happened since its snapshot before: actors/subtask/activity.ts),
// and no subtask has said since that it did something after that checkpoint. A checkpoint then would
// store what the last one holds, so the schedule skips it (as Kafka Streams commits only what was
// processed) and takes one every `checkpointIntervalWhileIdleMs` only.
//
// The subtasks are told apart by identity: after a restart (new subtasks, which watch for activity
// only once a snapshot of theirs found them quiet) the job is not at rest until a checkpoint of theirs
// says so.

export class IdleCheckpoints {
  /** The last completed checkpoint, when it found every subtask quiet. */
  private quietAt: number | undefined;
  /** The subtasks that acknowledged it. */
  private quietSubtasks: ReadonlySet<unknown> = new Set();
  /** The newest checkpoint after whose snapshot some subtask was active. */
  private activeAfter = Number.NEGATIVE_INFINITY;
  /** Periodic checkpoints skipped while at rest. */
  skipped = 0;

  /** Checkpoint `checkpointId` completed; `quiet`: each of `subtasks` acknowledged it as quiet. */
  completed(checkpointId: number, quiet: boolean, subtasks: readonly unknown[]): void {
    this.quietAt = quiet ? checkpointId : undefined;
    this.quietSubtasks = quiet ? new Set(subtasks) : new Set();
  }

  /** A subtask did something after its snapshot of `checkpointId`. */
  activity(afterCheckpoint: number): void {
    if (afterCheckpoint > this.activeAfter) this.activeAfter = afterCheckpoint;
  }

  /** At rest: the last completed checkpoint found these very subtasks quiet, and none was active since. */
  isIdle(subtasks: readonly unknown[]): boolean {
    const at = this.quietAt;
    if (at === undefined || this.activeAfter >= at || subtasks.length !== this.quietSubtasks.size) return false;
    for (const s of subtasks) if (!this.quietSubtasks.has(s)) return false;
    return true;
  }
}
