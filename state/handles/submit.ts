// Requests of the state handles through a handler's fast path (submitNow): an answer known at once costs
// one resolved promise instead of an async function's chain of them; otherwise the handler's submit.
// Failures (thrown by the handler or by `decode`/`next`) become rejected promises, as in an async function.

import { NOT_APPLIED, StateRequestType, type StateAddress, type StateRequestHandler } from "../contracts.ts";

const done = (): void => undefined;

function now(handler: StateRequestHandler, type: StateRequestType, address: StateAddress, value?: unknown): unknown {
  return handler.submitNow ? handler.submitNow(type, address, value) : NOT_APPLIED;
}

/** Reads the address; `decode` turns the stored value (undefined: absent) into the answer. */
export function read<R>(handler: StateRequestHandler, address: StateAddress, decode: (stored: unknown) => R): Promise<R> {
  try {
    const stored = now(handler, StateRequestType.Get, address);
    if (stored === NOT_APPLIED) return handler.submit(StateRequestType.Get, address).then(decode);
    return stored instanceof Promise ? stored.then(decode) : Promise.resolve(decode(stored));
  } catch (e) {
    return Promise.reject(e);
  }
}

/** A Put (undefined deletes) or an Append of `encoded`; resolves when the handler accepted it. */
export function written(handler: StateRequestHandler, type: typeof StateRequestType.Put | typeof StateRequestType.Append, address: StateAddress, encoded: unknown): Promise<void> {
  try {
    const answer = now(handler, type, address, encoded);
    if (answer === NOT_APPLIED) return handler.submit(type, address, encoded).then(done);
    // A write that has to wait for a flush answers with a promise.
    return answer instanceof Promise ? answer.then(done) : Promise.resolve();
  } catch (e) {
    return Promise.reject(e);
  }
}

/** Reads the address and writes `next(stored)` (encoded) back: reducing and aggregating state's add. */
export function readModifyWrite(handler: StateRequestHandler, address: StateAddress, next: (stored: unknown) => unknown): Promise<void> {
  try {
    const stored = now(handler, StateRequestType.Get, address);
    if (stored === NOT_APPLIED || stored instanceof Promise) {
      const later = stored === NOT_APPLIED ? handler.submit(StateRequestType.Get, address) : stored;
      return later.then((s) => written(handler, StateRequestType.Put, address, next(s)));
    }
    return written(handler, StateRequestType.Put, address, next(stored));
  } catch (e) {
    return Promise.reject(e);
  }
}
