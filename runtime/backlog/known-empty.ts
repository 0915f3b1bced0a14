// A backlog key folded on arrival (SortBuffer's ArrivalFold) started from state the backend knew was
// empty, and nothing wrote that state before the drain (no record of the key ran, reduce has no timers,
// no checkpoint is taken while sorting): the drain reads it from here instead of looking it up again.

import { NOT_APPLIED, StateRequestType as T, type StateAddress, type StateRequestHandler, type StateRequestType } from "../../state/contracts.ts";

export class KnownEmptyState implements StateRequestHandler {
  /** Once anything is written, the backend is the truth again. */
  private written = false;

  constructor(private readonly backend: StateRequestHandler, private readonly operator: string, private readonly state: string) {}

  submitNow(type: StateRequestType, address: StateAddress, value?: unknown, cursor?: string, limit?: number): unknown {
    if (type === T.Get && this.isEmpty(address)) return undefined;
    if (type !== T.Get) this.written = true;
    return this.backend.submitNow ? this.backend.submitNow(type, address, value, cursor, limit) : NOT_APPLIED;
  }

  submit(type: StateRequestType, address: StateAddress, value?: unknown, cursor?: string, limit?: number): Promise<unknown> {
    if (type === T.Get && this.isEmpty(address)) return Promise.resolve(undefined);
    if (type !== T.Get) this.written = true;
    return this.backend.submit(type, address, value, cursor, limit);
  }

  private isEmpty(address: StateAddress): boolean {
    return !this.written && address.userKeyId === undefined && address.state === this.state && address.operator === this.operator;
  }
}
