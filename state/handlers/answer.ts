// `tryNow`'s answer (a handler's or a backend's), turned into the promise a state handle awaits.

import { NOT_APPLIED, type StateRequest } from "../contracts.ts";

const toUndefined = (): undefined => undefined;

/** The promise of `tryNow`'s result, or undefined when it was NOT_APPLIED (the request has to go in a batch). */
export function answered(answerer: { tryNow(request: StateRequest): unknown }, request: StateRequest): Promise<unknown> | undefined {
  let result: unknown;
  try {
    result = answerer.tryNow(request);
  } catch (e) {
    return Promise.reject(e);
  }
  if (result === NOT_APPLIED) return undefined;
  // A write that has to wait for a flush answers with a promise; the handle expects no value from it.
  return result instanceof Promise ? result.then(toUndefined) : Promise.resolve(result);
}
