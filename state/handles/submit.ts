// Requests of the state handles through a handler's fast path (`tryNow`): an answer known at once costs
// one resolved promise instead of an async function's chain of them; otherwise the handler's submit.
// Failures (thrown by the handler or by `decode`/`next`) become rejected promises, as in an async function.

import { NOT_APPLIED, type GetRequest, type StateRequest, type StateRequestHandler } from "../contracts.ts";
import { stateRequest } from "../requests.ts";

const done = (): void => undefined;
/** What a write answered at once resolves to: one shared promise (it carries no value). */
const WRITTEN: Promise<void> = Promise.resolve();

/**
 * What turns a stored value (undefined: absent) into a read's answer: the handle itself, whose method it is.
 * Not a function per handle: a bound function is one more object per key, and with many keys one more
 * memory load per read that misses the CPU's caches.
 */
export interface StoredValueDecoder<R> {
  decodeStored(stored: unknown): R;
}

/** Sends `get` (a Get request); `decoder` turns the stored value into the answer. */
export function read<R>(handler: StateRequestHandler, get: GetRequest, decoder: StoredValueDecoder<R>): Promise<R> {
  try {
    const stored = handler.tryNow(get);
    if (stored === NOT_APPLIED || stored instanceof Promise) return (stored === NOT_APPLIED ? handler.submit(get) : stored).then((s) => decoder.decodeStored(s));
    return Promise.resolve(decoder.decodeStored(stored));
  } catch (e) {
    return Promise.reject(e);
  }
}

/** A Put (undefined deletes) or an Append; resolves when the handler accepted it. */
export function written(handler: StateRequestHandler, write: StateRequest): Promise<void> {
  try {
    const answer = handler.tryNow(write);
    if (answer === NOT_APPLIED) return handler.submit(write).then(done);
    // A write that has to wait for a flush answers with a promise.
    return answer instanceof Promise ? answer.then(done) : WRITTEN;
  } catch (e) {
    return Promise.reject(e);
  }
}

/** Reads with `get` and writes `next(stored)` (encoded) back to its address: reducing and aggregating state's add. */
export function readModifyWrite(handler: StateRequestHandler, get: GetRequest, next: (stored: unknown) => unknown): Promise<void> {
  try {
    const stored = handler.tryNow(get);
    if (stored === NOT_APPLIED || stored instanceof Promise) {
      const later = stored === NOT_APPLIED ? handler.submit(get) : stored;
      return later.then((s) => written(handler, stateRequest.put(get.address, next(s))));
    }
    return written(handler, stateRequest.put(get.address, next(stored)));
  } catch (e) {
    return Promise.reject(e);
  }
}
