// Runs the tasks of a batch of sorted backlog keys concurrently with their state requests grouped
// (FLIP-426): a request that needs nothing remote (the backend's applyNow: heap state, a cached or
// known-absent KV entry, a plain put) is answered at once; the others, from all keys of the batch, go to
// the backend together once the running tasks cannot go on without them. The AsyncExecutionController's
// key accounting, in-flight records and epochs are not needed here: after the sort every key occurs once
// per batch, the drain runs alone in the subtask's mailbox (the controller is drained first), and the
// batch bounds what is in flight.

import { NOT_APPLIED, type KeyedStateBackend, type StateAddress, type StateRequest, type StateRequestHandler, type StateRequestType } from "../../state/contracts.ts";
import { answerNow } from "../../state/handlers/apply-now.ts";
import type { MaybePromise } from "../contracts/operators.ts";

/** One key's work, its state requests going to `handler`. */
export type KeyTask = (handler: StateRequestHandler) => MaybePromise;

export class SortedKeysRunner {
  private round: GroupedRequest[] = [];
  private scheduled = false;
  private readonly applyNow: KeyedStateBackend["applyNow"];
  /** Batches sent to the backend, and the requests in them. */
  batches = 0;
  requests = 0;

  constructor(private readonly backend: KeyedStateBackend, private readonly maxBatch: number) {
    this.applyNow = backend.applyNow?.bind(backend);
  }

  /** Runs `tasks` (one per distinct key) to their end; rejects with the first failure. */
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

  /** A request of a key with none waiting before it: its answer when the backend can give it now. */
  tryNow(type: StateRequestType, address: StateAddress, value?: unknown, cursor?: string, limit?: number): Promise<unknown> | undefined {
    return this.applyNow && answerNow(this.applyNow, type, address, value, cursor, limit);
  }

  /** tryNow's answer without the promise (StateRequestHandler.submitNow), or NOT_APPLIED. */
  applyAtOnce(type: StateRequestType, address: StateAddress, value?: unknown, cursor?: string, limit?: number): unknown {
    return this.applyNow ? this.applyNow(type, address, value, cursor, limit) : NOT_APPLIED;
  }

  enqueue(request: GroupedRequest): void {
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

/** The handler of one key's task: its requests apply in the order issued. */
class KeyRequests implements StateRequestHandler {
  /** Requests of this key waiting in a batch: while any does, later ones wait too. */
  waiting = 0;

  constructor(private readonly runner: SortedKeysRunner) {}

  submitNow(type: StateRequestType, address: StateAddress, value?: unknown, cursor?: string, limit?: number): unknown {
    return this.waiting === 0 ? this.runner.applyAtOnce(type, address, value, cursor, limit) : NOT_APPLIED;
  }

  submit(type: StateRequestType, address: StateAddress, value?: unknown, cursor?: string, limit?: number): Promise<unknown> {
    if (this.waiting === 0) {
      const answer = this.runner.tryNow(type, address, value, cursor, limit);
      if (answer !== undefined) return answer;
    }
    this.waiting++;
    return new Promise((resolve, reject) => this.runner.enqueue(new GroupedRequest(this, type, address, value, cursor, limit, resolve, reject)));
  }
}

class GroupedRequest implements StateRequest {
  private settled = false;

  constructor(
    private readonly owner: KeyRequests,
    readonly type: StateRequestType,
    readonly address: StateAddress,
    readonly value: unknown,
    readonly cursor: string | undefined,
    readonly limit: number | undefined,
    private readonly onResult: (v: unknown) => void,
    private readonly onError: (e: unknown) => void,
  ) {}

  resolve(result: unknown): void {
    if (this.settled) return;
    this.settled = true;
    this.owner.waiting--;
    this.onResult(result);
  }

  reject(error: unknown): void {
    if (this.settled) return;
    this.settled = true;
    this.owner.waiting--;
    this.onError(error);
  }
}
