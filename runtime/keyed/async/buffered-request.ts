// One state request waiting in the AsyncExecutionController's active buffer for its batch.

import type { PendingStateRequest, StateRequest } from "../../../state/contracts.ts";

/** Completing the request (either way) settles its promise and releases the record's reference. */
export class BufferedRequest<R> implements PendingStateRequest {
  settle!: (v: unknown) => void;
  fail!: (e: unknown) => void;
  constructor(private readonly release: (record: R) => void, private readonly record: R, readonly request: StateRequest) {}
  resolve(v: unknown): void {
    this.settle(v);
    this.release(this.record);
  }
  reject(e: unknown): void {
    this.fail(e);
    this.release(this.record);
  }
}
