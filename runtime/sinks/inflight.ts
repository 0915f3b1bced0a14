// A bounded window of outstanding acknowledgements (JetStream publishes, KV puts): `add` tracks one and
// returns a promise only when the window is full (the sink's backpressure); `drain` waits for all and
// throws the first failure. Counting instead of a Set of promises keeps the hot path to one `then`.

export class InflightWindow {
  private count = 0;
  private failure: Error | undefined;
  private spaceWaiters: Array<() => void> = [];
  private idleWaiters: Array<() => void> = [];
  private readonly settle = () => {
    this.count--;
    if (this.spaceWaiters.length > 0 && (this.count < this.limit || this.failure)) this.spaceWaiters.shift()!();
    if (this.count === 0 && this.idleWaiters.length > 0) {
      const ws = this.idleWaiters;
      this.idleWaiters = [];
      for (const w of ws) w();
    }
  };

  constructor(readonly limit: number) {}

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
