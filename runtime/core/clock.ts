// Processing time behind an interface, so timer logic can run on a simulated clock in tests.

export interface Clock {
  now(): number;
  setTimeout(callback: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}

export const systemClock: Clock = {
  now: () => Date.now(),
  setTimeout: (callback, ms) => {
    const h = setTimeout(callback, ms);
    h.unref?.();
    return h;
  },
  clearTimeout: (h) => clearTimeout(h as NodeJS.Timeout),
};

/** A clock that moves only when told to: `advance(ms)` fires due timers in time order. */
export class ManualClock implements Clock {
  private time: number;
  private seq = 0;
  private timers = new Map<number, { at: number; callback: () => void }>();
  private advancing = false;
  private dueSoon = false;
  constructor(start = 0) { this.time = start; }
  now(): number { return this.time; }
  setTimeout(callback: () => void, ms: number): unknown {
    const id = ++this.seq;
    this.timers.set(id, { at: this.time + Math.max(0, ms), callback });
    // Already due (a timer registered for a past time, or restored overdue after a crash): fire it
    // soon, as the system clock would, instead of waiting for an advance that may never come.
    if (ms <= 0 && !this.advancing && !this.dueSoon) {
      this.dueSoon = true;
      setImmediate(() => { this.dueSoon = false; this.advance(0); });
    }
    return id;
  }
  clearTimeout(handle: unknown): void { this.timers.delete(handle as number); }
  /** Moves time on to `time` if that is later (a worker catching up with the leader's clock). */
  advanceTo(time: number): void {
    if (time > this.time) this.advance(time - this.time);
  }
  advance(ms: number): void {
    const target = this.time + ms;
    this.advancing = true;
    try {
      this.fireUpTo(target);
    } finally {
      this.advancing = false;
    }
    this.time = target;
  }

  private fireUpTo(target: number): void {
    for (;;) {
      let next: [number, { at: number; callback: () => void }] | undefined;
      for (const entry of this.timers) if (entry[1].at <= target && (!next || entry[1].at < next[1].at)) next = entry;
      if (!next) break;
      this.timers.delete(next[0]);
      this.time = next[1].at;
      next[1].callback();
    }
  }
}
