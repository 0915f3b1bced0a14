// Runs the tasks of a batch of sorted backlog keys concurrently with their state requests grouped
// (FLIP-426): a request that needs nothing remote (the backend's tryNow: heap state, a cached or
// known-absent KV entry, a plain put) is answered at once; the others, from all keys of the batch, go to
// the backend together once the running tasks cannot go on without them. The AsyncExecutionController's
// key accounting, in-flight records and epochs are not needed here: after the sort every key occurs once
// per batch, the drain runs alone in the subtask's mailbox (the controller is drained first), and the
// batch bounds what is in flight.

import { NOT_APPLIED, type KeyedStateBackend, type PendingStateRequest, type StateRequest, type StateRequestHandler } from "../../../state/contracts.ts";
import { answered } from "../../../state/handlers/answer.ts";
import { InOrderRequest, Waiting } from "../../../state/handlers/in-order.ts";
import type { MaybePromise } from "../../contracts/operators.ts";

/**
 * One key's work, or a lane's (keys one after another, each done before the next starts), its state
 * requests going to `handler`: a handler serves one task, so requests apply in the order issued.
 */
export type KeyTask = (handler: StateRequestHandler) => MaybePromise;

export class SortedKeysRunner {
  private round: PendingStateRequest[] = [];
  private scheduled = false;
  /** Batches sent to the backend, and the requests in them. */
  batches = 0;
  requests = 0;

  constructor(readonly backend: KeyedStateBackend, private readonly maxBatch: number) {}

  /** Runs `tasks` (no key in two of them) to their end; rejects with the first failure. */
  run(tasks: readonly KeyTask[]): Promise<unknown> {
    const running: Array<Promise<void>> = [];
    for (const task of tasks) {
      let r: MaybePromise;
      try {
        r = task(new KeyRequests(this));
      } catch (e) {
        running.push(Promise.reject(e));
        break;
      }
      if (r) running.push(r);
    }
    return Promise.all(running);
  }

  enqueue(request: PendingStateRequest): void {
    this.round.push(request);
    if (this.round.length >= this.maxBatch) this.flush();
    else if (!this.scheduled) {
      this.scheduled = true;
      // After every task has run as far as it can (all microtasks done): one batch for all of them.
      setImmediate(() => { this.scheduled = false; this.flush(); });
    }
  }

  private flush(): void {
    const batch = this.round;
    if (batch.length === 0) return;
    this.round = [];
    this.batches++;
    this.requests += batch.length;
    this.backend.executeBatch(batch).catch((e: unknown) => { for (const r of batch) r.reject(e); });
  }
}

/**
 * The handler of one key's task: its requests apply in the order issued. Fast path (the backlog drain's):
 * the backend answers at once what needs nothing remote, while none of the key's requests waits in a batch.
 */
class KeyRequests extends Waiting implements StateRequestHandler {
  // Its own count of requests waiting in a batch (one object per key, not two).
  constructor(private readonly runner: SortedKeysRunner) { super(); }

  tryNow(request: StateRequest): unknown {
    return this.count === 0 ? this.runner.backend.tryNow(request) : NOT_APPLIED;
  }

  submit(request: StateRequest): Promise<unknown> {
    if (this.count === 0) {
      const answer = answered(this.runner.backend, request);
      if (answer !== undefined) return answer;
    }
    return new Promise((resolve, reject) => this.runner.enqueue(new InOrderRequest(this, request, resolve, reject)));
  }
}
