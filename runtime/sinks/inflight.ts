// A bounded window of outstanding acknowledgements (JetStream publishes, KV puts): `add` tracks one and
// returns a promise only when the window is full (the sink's backpressure); `drain` waits for all and
// throws the first failure. Counting instead of a Set of promises keeps the hot path to one `then`.
// A full window resumes its writer once a quarter of it is acknowledged, not at each ack: the writer then
// publishes a burst that the client sends in one socket write, where resuming per ack cost a write (a
// system call) per message.

export class InflightWindow {
  private count = 0;
  private failure: Error | undefined;
  private spaceWaiters: Array<() => void> = [];
  private idleWaiters: Array<() => void> = [];
  private readonly settle = () => {
    this.count--;
    if (this.spaceWaiters.length > 0 && (this.count <= this.resumeAt || this.failure)) {
      const ws = this.spaceWaiters;
      this.spaceWaiters = [];
      for (const w of ws) w();
    }
    if (this.count === 0 && this.idleWaiters.length > 0) {
      const ws = this.idleWaiters;
      this.idleWaiters = [];
      for (const w of ws) w();
    }
  };

  private readonly resumeAt: number;

  constructor(readonly limit: number) {
    this.resumeAt = Math.max(0, limit - Math.max(1, Math.floor(limit / 4)));
  }

  get outstanding(): number { return this.count; }

  /** `describe` turns a rejection into the sink's error (kept: the first one wins). */
  add<R>(p: Promise<R>, describe: (e: unknown) => Error, onValue?: (r: R) => void): void | Promise<void> {
    this.count++;
    p.then(
      (r) => { onValue?.(r); this.settle(); },
      (e) => { this.failure ??= describe(e); this.settle(); },
    );
    if (this.count >= this.limit) return new Promise<void>((resolve) => { this.spaceWaiters.push(resolve); });
  }

  throwIfFailed(): void {
    if (this.failure) throw this.failure;
  }

  async drain(): Promise<void> {
    if (this.count > 0) await new Promise<void>((resolve) => this.idleWaiters.push(resolve));
    this.throwIfFailed();
  }
}
