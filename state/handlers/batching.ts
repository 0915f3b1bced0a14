import { NOT_APPLIED, type KeyedStateBackend, type PendingStateRequest, type StateRequest, type StateRequestHandler } from "../contracts.ts";

/**
 * Collects requests and hands them to the backend in batches of up to `batchSize`, as the async execution
 * controller does (FLIP-425): a batch starts when the buffer is full, or when `drain()` is called (the
 * controller's buffer timeout, or "every record in flight is waiting"). Used by tests and benchmarks.
 */
export class BatchingStateRequestHandler implements StateRequestHandler {
  private buffer: PendingStateRequest[] = [];
  private readonly running = new Set<Promise<void>>();
  batches = 0;

  constructor(private readonly backend: KeyedStateBackend, private readonly batchSize = 1000) {}

  get buffered(): number { return this.buffer.length; }

  /** Never: every request goes in a batch (what this handler is for). */
  tryNow(): unknown {
    return NOT_APPLIED;
  }

  submit(request: StateRequest): Promise<unknown> {
    return new Promise((resolve, reject) => {
      this.buffer.push({ request, resolve, reject });
      if (this.buffer.length >= this.batchSize) this.startBatch();
    });
  }

  /** Starts a batch with what is buffered and waits for every batch started so far. */
  async drain(): Promise<void> {
    if (this.buffer.length > 0) this.startBatch();
    while (this.running.size > 0) await Promise.all([...this.running]);
  }

  private startBatch(): void {
    const batch = this.buffer;
    this.buffer = [];
    this.batches++;
    const run: Promise<void> = this.backend.executeBatch(batch).catch((e: unknown) => { for (const r of batch) r.reject(e); })
      .finally(() => { this.running.delete(run); });
    this.running.add(run);
  }
}
