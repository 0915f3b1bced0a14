// Periodic checkpoints on the coordinator's clock: every `intervalMs`, or every `duringBacklogMs` while
// any running source reads a backlog (0: none then, FLIP-309). The time since the last periodic checkpoint
// is checked a few times per interval, so a checkpoint that was due while another ran (or while the job
// was not running) starts soon after, not one whole interval later.

import type { Clock } from "../../runtime/core/clock.ts";

export interface CheckpointScheduleOptions {
  readonly intervalMs: number;
  readonly duringBacklogMs: number;
  /** Whether any running source is in backlog now. */
  readonly inBacklog: () => boolean;
  /** Whether a periodic checkpoint may start now (none in flight, the job running, no final one begun). */
  readonly mayTrigger: () => boolean;
  readonly trigger: () => void;
}

export class CheckpointScheduler {
  private timer: unknown;
  private last: number;
  private readonly tickMs: number;

  constructor(private readonly clock: Clock, private readonly o: CheckpointScheduleOptions) {
    const backlog = o.duringBacklogMs > 0 ? o.duringBacklogMs : o.intervalMs;
    this.tickMs = Math.max(10, Math.min(o.intervalMs, backlog) / 4);
    this.last = clock.now();
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
    this.o.trigger();
  }
}
