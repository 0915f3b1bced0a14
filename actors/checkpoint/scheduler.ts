// Periodic checkpoints on the coordinator's clock: every `intervalMs`, or every `duringBacklogMs` while
// any running source reads a backlog (0: none then, FLIP-309). A checkpoint that is due while another runs
// (or while the job is not running) is looked at again a few times per interval, so it starts soon after,
// not one whole interval later. While the job is at rest
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
  /** How often a checkpoint that is due but may not start yet is looked at again. */
  private readonly tickMs: number;
  /** The longest sleep: the shorter non-zero interval, so that a source entering or leaving backlog is seen in time. */
  private readonly longestSleepMs: number;

  constructor(private readonly clock: Clock, private readonly o: CheckpointScheduleOptions) {
    const backlog = o.duringBacklogMs > 0 ? o.duringBacklogMs : o.intervalMs;
    this.tickMs = Math.max(10, Math.min(o.intervalMs, backlog) / 4);
    this.longestSleepMs = Math.min(o.intervalMs, backlog);
    this.last = clock.now();
    this.lastTaken = this.last;
    this.schedule(this.longestSleepMs);
  }

  stop(): void {
    if (this.timer !== undefined) this.clock.clearTimeout(this.timer);
    this.timer = undefined;
  }

  private schedule(delayMs: number): void {
    this.timer = this.clock.setTimeout(() => {
      const next = this.tick();
      if (this.timer !== undefined) this.schedule(next);
    }, delayMs);
  }

  /**
   * Triggers or skips a due checkpoint; returns how long to sleep. The process wakes once per interval
   * (an idle job's leader woke 8 times a second at 500 ms checkpoints when it looked every quarter
   * interval), and every `tickMs` only while a due checkpoint waits to start.
   */
  private tick(): number {
    const interval = this.o.inBacklog() ? this.o.duringBacklogMs : this.o.intervalMs;
    const now = this.clock.now();
    if (interval === 0) return this.tickMs;
    if (now - this.last < interval) return Math.min(this.longestSleepMs, this.last + interval - now);
    if (!this.o.mayTrigger()) return this.tickMs;
    this.last = now;
    if (this.o.isIdle() && (this.o.whileIdleMs === 0 || now - this.lastTaken < this.o.whileIdleMs)) {
      this.o.skipped();
    } else {
      this.lastTaken = now;
      this.o.trigger();
    }
    return Math.min(this.longestSleepMs, interval);
  }
}
