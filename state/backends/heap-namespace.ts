// Where the heap backend keeps state: one namespace per state of an operator in a key group, holding its
// plain values (and lists) by index, and its maps.
//
// A key's value is also held by the address that last used it (StateAddress.heldValue), so a request
// loads nothing but the address it carries: a cell object per key, reached through the address, was one
// more load per request, and with many keys one more miss of the CPU's caches (bench/prof-keyed.ts heap,
// 10k keys: the heap's `apply` took ~130 ns a record, most of it that load). Nothing in a namespace points
// at an address (its index maps key ids to numbers): an object reached from two places was laid out by
// the garbage collector away from its handle, and the miss only moved (measured: an address that was
// itself the cell in the namespace's map cost what the cell had).
//
// Which address may use its copy: the owner of the value's index (`owners`), while the namespace's
// `epoch` is the one the address saw. An address taking a value over from another owner advances the
// epoch, so every copy of the namespace is looked up again (rare: a handle made again after its key's
// slot was dropped, a sorted drain's); the owner's own writes go to both.

import type { StateAddress } from "../contracts.ts";
import type { OrderedKeys } from "./ordered-keys.ts";

export interface HeapMap {
  readonly keys: OrderedKeys;
  readonly values: Map<string, unknown>;
}

/**
 * The state of one key group: operator → state name → namespace. Nested maps, so that a request looks
 * up strings that already exist (and whose hashes are cached) instead of building a composite key.
 */
export type KeyGroupState = Map<string, Map<string, Namespace>>;

/** No index: the address holds no value (absent, or not looked up). */
export const NO_INDEX = -1;

/**
 * One state of one operator in one key group. Removed from its key group once empty (a window's state is
 * named per window: kept, every fired window would leave one behind); addresses that memoized it check
 * `attached` and look the namespace up again.
 */
export class Namespace {
  /** Plain values (and lists) present: key id → index in the columns below. */
  readonly indexes = new Map<string, number>();
  private readonly held: unknown[] = [];
  /** A list's JSON length when known (for the size check of an append), else -1. */
  private readonly lengths: number[] = [];
  /** The token of the address holding a copy of the value (0: none). */
  private readonly owners: number[] = [];
  private readonly freed: number[] = [];
  readonly maps = new Map<string, HeapMap>();
  /** Copies held by addresses are valid while they saw this epoch. */
  epoch = 0;
  attached = true;

  constructor(readonly operator: string, readonly state: string, readonly group: KeyGroupState) {}

  get empty(): boolean { return this.indexes.size === 0 && this.maps.size === 0; }

  lengthAt(i: number): number { return this.lengths[i]!; }

  /** Every value present, by key id (a snapshot's). */
  *entries(): Iterable<[string, unknown]> {
    for (const [keyId, i] of this.indexes) yield [keyId, this.held[i]];
  }

  /** Stores `value` (never undefined) at index `i`, as its owner (heldBy made the address the owner). */
  storeAt(i: number, value: unknown, jsonLength: number): void {
    this.held[i] = value;
    this.lengths[i] = jsonLength;
  }

  /** A value for a key that has none: its index, owned by `token` (0: no address yet, a restore's). */
  add(keyId: string, value: unknown, jsonLength: number, token: number): number {
    const i = this.freed.length > 0 ? this.freed.pop()! : this.held.length;
    this.held[i] = value;
    this.lengths[i] = jsonLength;
    this.owners[i] = token;
    this.indexes.set(keyId, i);
    return i;
  }

  /** The key's value removed: its index is free for another key. */
  remove(keyId: string, i: number): void {
    this.indexes.delete(keyId);
    this.held[i] = undefined;
    this.owners[i] = 0;
    this.freed.push(i);
  }

  /**
   * `address` (whose token is `token`) holds a copy of index `i`'s value from now on: taken from another
   * owner, every copy of the namespace is looked up again.
   */
  heldBy(address: StateAddress, i: number, token: number): void {
    const owner = this.owners[i]!;
    if (owner !== 0 && owner !== token) this.epoch++;
    this.owners[i] = token;
    address.heldIndex = i;
    address.heldValue = this.held[i];
    address.heldEpoch = this.epoch;
  }
}

/** `address` holds no copy: its next request looks its key up. */
export function released(address: StateAddress): void {
  address.heldIndex = NO_INDEX;
  address.heldValue = undefined;
  address.heldEpoch = -1;
}

export function namespaceOf(group: KeyGroupState, operator: string, state: string): Namespace {
  let byState = group.get(operator);
  if (byState === undefined) group.set(operator, (byState = new Map()));
  let ns = byState.get(state);
  if (ns === undefined) byState.set(state, (ns = new Namespace(operator, state, group)));
  return ns;
}

/** The namespace if it exists (a read of absent state creates none). */
export function existingNamespace(group: KeyGroupState, operator: string, state: string): Namespace | undefined {
  return group.get(operator)?.get(state);
}

/** An emptied namespace leaves its key group. */
export function detachIfEmpty(ns: Namespace): void {
  if (!ns.empty || !ns.attached) return;
  ns.attached = false;
  const byState = ns.group.get(ns.operator);
  if (byState?.get(ns.state) !== ns) return;
  byState.delete(ns.state);
  if (byState.size === 0) ns.group.delete(ns.operator);
}

export function* namespaces(group: KeyGroupState): Iterable<Namespace> {
  for (const byState of group.values()) yield* byState.values();
}
