// The async fast path as a handler's answer (the controller's and the backlog drain's): what
// KeyedStateBackend.applyNow returns, turned into the promise a state handle awaits.

import { NOT_APPLIED, type KeyedStateBackend, type StateAddress, type StateRequestType } from "../contracts.ts";

const toUndefined = (): undefined => undefined;

/** The request's answer when the backend applied it at once; undefined when it has to go in a batch. */
export function answerNow(
  applyNow: NonNullable<KeyedStateBackend["applyNow"]>,
  type: StateRequestType, address: StateAddress, value?: unknown, cursor?: string, limit?: number,
): Promise<unknown> | undefined {
  let result: unknown;
  try {
    result = applyNow(type, address, value, cursor, limit);
  } catch (e) {
    return Promise.reject(e);
  }
  if (result === NOT_APPLIED) return undefined;
  // A write that has to wait for a flush answers with a promise; the handle expects no value from it.
  return result instanceof Promise ? result.then(toUndefined) : Promise.resolve(result);
}
