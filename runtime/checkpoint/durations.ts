// Completed checkpoints' durations, counted into fixed buckets as they complete (one increment per
// checkpoint): what a Prometheus histogram of checkpoint durations reads at scrape time, without the
// coordinator knowing about Prometheus.

/** Upper bounds of the buckets, in ms (a last, implicit one holds everything slower). */
export const CHECKPOINT_DURATION_BOUNDS_MS = [10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10_000, 30_000, 60_000] as const;

export interface DurationCounts {
  readonly boundsMs: readonly number[];
  /** Non-cumulative: counts[i] checkpoints took at most boundsMs[i] and more than the bound before it; the last entry is beyond every bound. */
  readonly counts: readonly number[];
  readonly sumMs: number;
  readonly count: number;
}

export class DurationHistogram {
  private readonly counts = new Array<number>(CHECKPOINT_DURATION_BOUNDS_MS.length + 1).fill(0);
  private sumMs = 0;
  private count = 0;

  observe(ms: number): void {
    let i = 0;
    while (i < CHECKPOINT_DURATION_BOUNDS_MS.length && ms > CHECKPOINT_DURATION_BOUNDS_MS[i]!) i++;
    this.counts[i]!++;
    this.sumMs += ms;
    this.count++;
  }

  snapshot(): DurationCounts {
    return { boundsMs: CHECKPOINT_DURATION_BOUNDS_MS, counts: [...this.counts], sumMs: this.sumMs, count: this.count };
  }
}
