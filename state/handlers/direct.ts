import { NOT_APPLIED, type KeyedStateBackend, type StateRequest, type StateRequestHandler } from "../contracts.ts";
import { answered } from "./answer.ts";
import { InOrderRequest, Waiting } from "./in-order.ts";

/**
 * Sync mode: every request goes to the backend at once. Fast path (sync mode's): the backend's `tryNow`
 * answers without a request object or a batch when it can (the heap always; KV a cached get, a plain
 * put), since a batch of one costs a promise chain per request; the rest goes as a batch of one.
 */
export class DirectStateRequestHandler implements StateRequestHandler {
  private readonly waiting = new Waiting();

  constructor(private readonly backend: KeyedStateBackend) {}

  tryNow(request: StateRequest): unknown {
    return this.waiting.count === 0 ? this.backend.tryNow(request) : NOT_APPLIED;
  }

  submit(request: StateRequest): Promise<unknown> {
    if (this.waiting.count === 0) {
      const answer = answered(this.backend, request);
      if (answer !== undefined) return answer;
    }
    return new Promise((resolve, reject) => {
      const pending = new InOrderRequest(this.waiting, request, resolve, reject);
      this.backend.executeBatch([pending]).catch((e: unknown) => { pending.reject(e); });
    });
  }
}
