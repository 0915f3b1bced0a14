// Periodic checkpoints on the coordinator's clock: every `intervalMs`, or every `duringBacklogMs` while
// any running source reads a backlog (0: none then, FLIP-309). The time since the last periodic checkpoint
// is checked a few times per interval, so a checkpoint that was due while another ran (or while the job
// was not running) starts soon after, not one whole interval later. While the job is at rest
// (idle-checkpoints.ts) a due checkpoint is skipped, unless `whileIdleMs` passed since the last one taken.

import type { Clock } from "../../runtime/core/clock.ts";

export interface CheckpointScheduleOptions {
  readonly intervalMs: number;
  readonly duringBacklogMs: number;
  /** Whether any running source is in backlog now. */
  readonly inBacklog: () => boolean;
  /** Whether a periodic checkpoint may start now (none in flight, the job running, no final one begun). */
  readonly mayTrigger: () => boolean;
  readonly trigger: () => void;
  /** Whether the job is at rest: nothing happened since the last completed checkpoint. */
  readonly isIdle: () => boolean;
  /** While at rest, a checkpoint at most this often (0: none). */
  readonly whileIdleMs: number;
  /** A due checkpoint was skipped (the job at rest). */
  readonly skipped: () => void;
}

export class CheckpointScheduler {
  private timer: unknown;
  private last: number;
  /** When the last checkpoint was triggered (skipped ones not counted). */
  private lastTaken: number;
  private readonly tickMs: number;

  constructor(private readonly clock: Clock, private readonly o: CheckpointScheduleOptions) {
    const backlog = o.duringBacklogMs > 0 ? o.duringBacklogMs : o.intervalMs;
    this.tickMs = Math.max(10, Math.min(o.intervalMs, backlog) / 4);
    this.last = clock.now();
    this.lastTaken = this.last;
    this.schedule();
  }

  stop(): void {
    if (this.timer !== undefined) this.clock.clearTimeout(this.timer);
    this.timer = undefined;
  }

  private schedule(): void {
    this.timer = this.clock.setTimeout(() => {
      this.tick();
      if (this.timer !== undefined) this.schedule();
    }, this.tickMs);
  }

  private tick(): void {
    if (!this.o.mayTrigger()) return;
    const interval = this.o.inBacklog() ? this.o.duringBacklogMs : this.o.intervalMs;
    const now = this.clock.now();
    if (interval === 0 || now - this.last < interval) return;
    this.last = now;
    if (this.o.isIdle() && (this.o.whileIdleMs === 0 || now - this.lastTaken < this.o.whileIdleMs)) {
      this.o.skipped();
      return;
    }
    this.lastTaken = now;
    this.o.trigger();
  }
}
