// Builders of the one state request shape. Every request gets the same five fields in the same order
// (unused ones undefined), so handlers and backends reading `kind`, `address` and `value` see one object
// layout whatever the kind (property access stays monomorphic on the hot path).

import {
  StateRequestType as T,
  type AppendRequest, type ClearMapRequest, type GetRequest, type PutRequest, type ScanRequest, type StateAddress, type StateRequest,
} from "./contracts.ts";

function build<R extends StateRequest>(kind: R["kind"], address: StateAddress, value: unknown, cursor: string | undefined, limit: number | undefined): R {
  return { kind, address, value, cursor, limit } as unknown as R;
}

export const stateRequest = {
  get: (address: StateAddress) => build<GetRequest>(T.Get, address, undefined, undefined, undefined),
  /** `value` undefined deletes. */
  put: (address: StateAddress, value: unknown) => build<PutRequest>(T.Put, address, value, undefined, undefined),
  /** `values` must not be empty. */
  append: (address: StateAddress, values: readonly unknown[]) => build<AppendRequest>(T.Append, address, values, undefined, undefined),
  scan: (address: StateAddress, cursor?: string, limit?: number) => build<ScanRequest>(T.Scan, address, undefined, cursor, limit),
  clearMap: (address: StateAddress) => build<ClearMapRequest>(T.ClearMap, address, undefined, undefined, undefined),
} as const;
