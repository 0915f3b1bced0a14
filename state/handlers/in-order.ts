// Requests of one issuer (a record, a key's task, a sync-mode handler) that went in a batch: while any
// waits there, the issuer's later requests must not be answered at once (`tryNow`), or they would
// overtake it. The count goes down when the backend reports the request, whichever way.

import type { PendingStateRequest, StateRequest } from "../contracts.ts";

export class Waiting {
  count = 0;
}

export class InOrderRequest implements PendingStateRequest {
  private settled = false;

  constructor(
    private readonly waiting: Waiting,
    readonly request: StateRequest,
    private readonly onResult: (v: unknown) => void,
    private readonly onError: (e: unknown) => void,
  ) {
    waiting.count++;
  }

  resolve(result: unknown): void {
    if (this.settled) return;
    this.settled = true;
    this.waiting.count--;
    this.onResult(result);
  }

  reject(error: unknown): void {
    if (this.settled) return;
    this.settled = true;
    this.waiting.count--;
    this.onError(error);
  }
}
