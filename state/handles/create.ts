import type { HandleOf, KeyScope, StateDescriptor, StateRequestHandler } from "../contracts.ts";
import { AggregatingStateHandle } from "./aggregating.ts";
import { ListStateHandle } from "./list.ts";
import { MapStateHandle } from "./map.ts";
import { ReducingStateHandle } from "./reducing.ts";
import { ValueStateHandle } from "./value.ts";

export interface StateHandleOptions {
  /** Entries per Scan request when iterating a MapState (default DEFAULT_SCAN_PAGE_SIZE). */
  readonly scanPageSize?: number;
}

/**
 * The handle `ctx.state(descriptor)` returns for the key in `scope`: every method becomes requests to
 * `handler` (the backend directly in sync mode, the async execution controller otherwise).
 */
export function createStateHandle<D extends StateDescriptor>(
  descriptor: D,
  scope: KeyScope,
  handler: StateRequestHandler,
  options: StateHandleOptions = {},
): HandleOf<D> {
  switch (descriptor.kind) {
    case "value": return new ValueStateHandle(descriptor, scope, handler) as HandleOf<D>;
    case "list": return new ListStateHandle(descriptor, scope, handler) as HandleOf<D>;
    case "map": return new MapStateHandle(descriptor, scope, handler, options.scanPageSize) as HandleOf<D>;
    case "reducing": return new ReducingStateHandle(descriptor, scope, handler) as HandleOf<D>;
    case "aggregating": return new AggregatingStateHandle(descriptor, scope, handler) as HandleOf<D>;
    default: throw new TypeError(`unknown state descriptor kind: ${(descriptor as { kind?: unknown }).kind}`);
  }
}
