// Whether a subtask did anything since its last snapshot, so that the checkpoint coordinator can skip
// periodic checkpoints of a job at rest (actors/checkpoint/idle-checkpoints.ts), as Kafka Streams commits
// only what was processed. Activity is what can change a snapshot or what downstream sees: a frame other
// than a barrier (records, watermarks, idleness, attributes, end of input), a source batch that is not
// empty, and an operator's mail (a processing-time timer) unless it says it is housekeeping (a periodic
// watermark check that found nothing new: what it emits reaches downstream as a frame).
//
// A snapshot that found the subtask quiet says so in its acknowledgement; from then on the first activity
// is told to the coordinator at once (one message per idle-to-active change, never per record), so a
// skipped checkpoint never holds back what came after it by more than one interval.

export class SubtaskActivity {
  /** Something happened since the last snapshot (read on the record path before calling mark). */
  active = false;
  /** The checkpoint whose snapshot found this subtask quiet, while no activity followed it. */
  private quietAt: number | undefined;
  /** The checkpoint after whose snapshot activity was told (repeated in status reports). */
  private toldAfter: number | undefined;

  constructor(private readonly onActive: (afterCheckpoint: number) => void) {}

  mark(): void {
    if (this.active) return;
    this.active = true;
    const quietAt = this.quietAt;
    if (quietAt === undefined) return;
    this.quietAt = undefined;
    this.toldAfter = quietAt;
    this.onActive(quietAt);
  }

  /**
   * A snapshot for `checkpointId` is captured (synchronously, on the run loop): whether nothing happened
   * since the one before. Activity from now on belongs after it.
   */
  capture(checkpointId: number): boolean {
    const quiet = !this.active;
    this.active = false;
    this.toldAfter = undefined;
    this.quietAt = quiet ? checkpointId : undefined;
    return quiet;
  }

  /**
   * The checkpoint after whose snapshot this subtask was active, if it told so since its last snapshot:
   * status reports repeat it, so that a lost message over NATS cannot keep a busy job from checkpointing.
   */
  get activeAfter(): number | undefined {
    return this.toldAfter;
  }
}
