// What MapState's entries(), keys() and values() return. API.md's contract is that every state method
// returns a Promise, so awaiting one gives every item in an array; Flink's async MapState iterates page
// by page instead (FLIP-424's StateIterator), which `for await` does here without loading the whole map.
// Nothing is read until one of the two starts.

import type { StateIterable } from "../contracts.ts";

export class StateIteration<T> implements StateIterable<T> {
  readonly [Symbol.toStringTag] = "StateIteration";
  private all: Promise<T[]> | undefined;

  /** `items` starts a new pass over the map each time it is called. */
  constructor(private readonly items: () => AsyncIterable<T>) {}

  [Symbol.asyncIterator](): AsyncIterator<T> {
    return this.items()[Symbol.asyncIterator]();
  }

  then<R1 = T[], R2 = never>(onFulfilled?: ((items: T[]) => R1 | PromiseLike<R1>) | null, onRejected?: ((reason: unknown) => R2 | PromiseLike<R2>) | null): Promise<R1 | R2> {
    return this.collected().then(onFulfilled, onRejected);
  }

  catch<R = never>(onRejected?: ((reason: unknown) => R | PromiseLike<R>) | null): Promise<T[] | R> {
    return this.collected().catch(onRejected);
  }

  finally(onFinally?: (() => void) | null): Promise<T[]> {
    return this.collected().finally(onFinally);
  }

  /** One collection however often it is awaited (as a promise settles once). */
  private collected(): Promise<T[]> {
    return (this.all ??= collect(this.items()));
  }
}

async function collect<T>(items: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const item of items) out.push(item);
  return out;
}
