// A request of a batch with its KV keys resolved, and the entry it needs pinned (backend.ts).

import type { PendingStateRequest, StateRequest } from "../../contracts.ts";
import { StateRequestType as T } from "../../contracts.ts";
import { StateAccessError } from "../../errors.ts";
import { EntryKind, type CacheEntry } from "./cache.ts";
import { kindConflict } from "./entries.ts";
import type { Need } from "./loader.ts";

/** One request of a batch, with its keys resolved. */
export interface Prepared {
  readonly request: StateRequest;
  /** Where its completion is reported. */
  readonly pending: PendingStateRequest;
  /** KV key of the plain entry or of the map's index. */
  readonly base: string;
  /** KV key of the map entry, for map entry requests. */
  readonly entry: string | undefined;
  /** The key this request needs in the cache before it can apply, if any. */
  readonly needKey: string | undefined;
  need: Need | undefined;
  /** Set once applied: what the request resolves with (after any backpressure wait). */
  applied: boolean;
  result: unknown;
}

/** The pinned entry a prepared request needs, checked to be of the kind it expects. */
export function held(p: Prepared, kind: EntryKind): CacheEntry {
  const e = p.need?.entry;
  if (e === undefined) throw new StateAccessError(`internal: entry ${p.needKey} is not pinned`);
  if (e.kind !== kind) throw kindConflict(p.request.address);
  return e;
}

export function needKind(request: StateRequest): EntryKind {
  return request.kind === T.Get || request.kind === T.Append ? EntryKind.Value : EntryKind.Index;
}
