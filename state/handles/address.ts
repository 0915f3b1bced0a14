// Addresses of a handle's requests, built once per handle (not per call), on which backends memoize what
// the key resolves to. The requests themselves are made per call: a young object costs less than loading
// one kept per key, which with many keys misses the CPU's caches (bench/prof-keyed.ts heap, 10k keys:
// ~5% more records/s than a Get request kept on each handle).

import type { KeyScope, StateAddress } from "../contracts.ts";

export function baseAddress(state: string, scope: KeyScope): StateAddress {
  // Every field present from the start: one object shape for all addresses (the memo is filled later).
  return { operator: scope.operator, state, keyGroup: scope.keyGroup, keyId: scope.keyId, userKeyId: undefined, keyOwner: undefined, keyMemo: undefined, heldValue: undefined, heldIndex: -1, heldEpoch: -1, heldToken: 0 };
}

export function entryAddress(base: StateAddress, userKeyId: string): StateAddress {
  return { operator: base.operator, state: base.state, keyGroup: base.keyGroup, keyId: base.keyId, userKeyId, keyOwner: undefined, keyMemo: undefined, heldValue: undefined, heldIndex: -1, heldEpoch: -1, heldToken: 0 };
}
