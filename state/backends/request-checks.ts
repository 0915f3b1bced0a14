// Checks every backend applies to a request before touching state, with the same messages everywhere.

import type { StateAddress, StateRequest } from "../contracts.ts";
import { StateRequestType as T } from "../contracts.ts";
import { StateAccessError } from "../errors.ts";
import type { KeyGroupRange } from "../key-groups.ts";

export function checkKeyGroup(range: KeyGroupRange, address: StateAddress): void {
  const g = address.keyGroup;
  if (!(g >= range.start && g <= range.end) || !Number.isInteger(g)) {
    throw new StateAccessError(
      `state "${address.state}" of operator "${address.operator}" for key ${address.keyId}: key group ${g} is outside this subtask's key-group range ${range.toString()}`,
    );
  }
}

export function checkShape(request: StateRequest): void {
  const { kind, address } = request;
  switch (kind) {
    case T.Get:
    case T.Put:
      return;
    case T.Append:
      if (address.userKeyId !== undefined || !Array.isArray(request.value) || request.value.length === 0) {
        throw new StateAccessError(`state "${address.state}": append needs a list address and a non-empty array`);
      }
      return;
    case T.Scan:
    case T.ClearMap:
      if (address.userKeyId !== undefined) throw new StateAccessError(`state "${address.state}": ${kind} addresses a whole map (no userKeyId)`);
      return;
    default:
      throw new StateAccessError(`state "${(request as StateRequest).address.state}": unknown request kind ${JSON.stringify(kind)}`);
  }
}

export function closedError(kind: string): StateAccessError {
  return new StateAccessError(`the ${kind} state backend is closed`);
}

/** Scan page size: the request's limit, at least 1. */
export function scanLimit(limit: number | undefined, fallback: number): number {
  return limit === undefined || !(limit >= 1) ? fallback : Math.floor(limit);
}
