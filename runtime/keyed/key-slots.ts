// One object per key of a keyed subtask, reused by each of the key's records: the key's identity (its
// canonical JSON and key group, computed when the key is first seen, not per record), its lock (one record
// of a key runs at a time: strict per-key order, FLIP-425) and its state handles. Handles send their
// requests to the slot, which passes them to whatever runs the key right now (the record in the async
// execution controller, the backend directly in sync mode, the key's overlay in a sorted drain); so a
// handle, its address and the backend's key string for it are built once per key, not once per record.
//
// The table keeps the slots of recently used keys in two generations (a new one starts when the current
// holds `capacity` slots; the one before it is dropped, except slots a record holds). A key whose slot was
// dropped pays ~2.5 µs to build it again (its key id, key group, handle and address, the state's lookup,
// and the old generation's garbage), more than its whole record on the heap backend; a slot with a value
// handle is ~340 B. On the heap backend, where every key's state is in memory anyway, generations hold
// 65,536: with 16,384, 50k keys per subtask ran the heap count at 0.24-0.28M records/s against 0.45-0.52M
// (bench/prof-keyed.ts, KEYS=100000), for up to ~44 MB of slots a subtask. On KV, whose cache decides
// which keys are warm, a quarter of the cache's entries (two generations: half), 16,384 to 65,536: 50,000
// with the default 200k-entry cache ran the same count over 100k warm keys at 175-233k records/s
// against 91-168k with 16,384. For `npm run bench state`'s 1M keys through a 100k-entry cache, 25,000
// took its RSS from 270 to 293 MB (65,536 to 348).

import type { HandleOf, KeyScope, StateDescriptor, StateRequest, StateRequestHandler } from "../../state/contracts.ts";
import { canonicalJson } from "../../state/key-groups.ts";
import { createStateHandle } from "../../state/mod.ts";
import type { KeyLock } from "./async/key-lock.ts";
import { checkStateClash } from "./state-clash.ts";

/** Slots a generation holds before a new one starts, at least and at most (see the top of this file). */
const MIN_SLOTS_PER_GENERATION = 16_384;
const MAX_SLOTS_PER_GENERATION = 65_536;

/** Slots a generation holds on `backend`: on the heap all it may; on KV a quarter of the state cache's entries. */
export function slotsPerGeneration(backend: "heap" | "jetstream-kv", cacheMaxEntries: number): number {
  if (backend === "heap") return MAX_SLOTS_PER_GENERATION;
  return Math.min(MAX_SLOTS_PER_GENERATION, Math.max(MIN_SLOTS_PER_GENERATION, Math.floor(cacheMaxEntries / 4)));
}

/** State handles a key keeps (beyond its first); more start the cache over (a handle is cheap to make again). */
const MAX_HANDLES_PER_KEY = 32;

export class KeySlot implements KeyScope, KeyLock, StateRequestHandler {
  /** Where the handles' requests go: set by whatever starts running one of the key's records. */
  handler: StateRequestHandler | undefined;
  busy = false;
  waiting: unknown[] | undefined = undefined;
  startedTick = 0;
  private firstDescriptor: StateDescriptor | undefined;
  private firstHandle: unknown;
  private handles: Map<StateDescriptor, unknown> | undefined;
  /** Free for the owner's use (the keyed operator keeps the key's timer service here). */
  timers: unknown;
  /** Async mode: the key's timers handed to the controller and not finished (a due timer waits for them). */
  timersInFlight = 0;

  constructor(readonly operator: string, readonly key: unknown, readonly keyId: string, readonly keyGroup: number) {}

  submit(request: StateRequest): Promise<unknown> { return this.handler!.submit(request); }
  tryNow(request: StateRequest): unknown { return this.handler!.tryNow(request); }

  state<D extends StateDescriptor>(descriptor: D): HandleOf<D> {
    // Most functions use one state: its handle lives in a field, others in a map.
    if (this.firstDescriptor === descriptor) return this.firstHandle as HandleOf<D>;
    let h = this.handles?.get(descriptor);
    if (h !== undefined) return h as HandleOf<D>;
    if (this.firstDescriptor !== undefined) checkStateClash(descriptor, this.descriptors(), this.operator);
    h = createStateHandle(descriptor, this, this);
    if (this.firstDescriptor === undefined) {
      this.firstDescriptor = descriptor;
      this.firstHandle = h;
    } else {
      this.handles ??= new Map();
      // Bounded: a function that makes descriptors as it goes (one per window, or inline) would grow it for ever.
      if (this.handles.size >= MAX_HANDLES_PER_KEY) this.handles.clear();
      this.handles.set(descriptor, h);
    }
    return h as HandleOf<D>;
  }

  private *descriptors(): Iterable<StateDescriptor> {
    if (this.firstDescriptor !== undefined) yield this.firstDescriptor;
    if (this.handles !== undefined) yield* this.handles.keys();
  }

  /**
   * Forgets the key's handle of `descriptor`: its state was cleared for good (a fired window's). Otherwise
   * the handles of a key's past windows stayed until the cap, each holding its address and the state
   * cache's entry for it (evicted or not): 180k handles and cache entries for 10k keys in `npm run soak`.
   */
  release(descriptor: StateDescriptor): void {
    if (this.firstDescriptor === descriptor) {
      this.firstDescriptor = undefined;
      this.firstHandle = undefined;
    } else {
      this.handles?.delete(descriptor);
    }
  }
}

interface Generation {
  /** Strings, finite numbers, booleans: by value (Map's SameValueZero keeps 1 and "1" apart, and -0 with 0). */
  readonly byValue: Map<unknown, KeySlot>;
  /** Any other key (objects, arrays, null, undefined, NaN): by canonical JSON. */
  readonly byJson: Map<string, KeySlot>;
}

const generation = (): Generation => ({ byValue: new Map(), byJson: new Map() });

/** Keys looked up by value: those whose canonical JSON is one-to-one with them (NaN and ±Infinity are all "null"). */
const byValue = (key: unknown): boolean => typeof key === "string" || typeof key === "boolean" || (typeof key === "number" && Number.isFinite(key));

export class KeySlotTable {
  private current = generation();
  private previous = generation();

  /** `keyGroupOf` places a key seen for the first time (and throws when it is not this subtask's). */
  constructor(private readonly operator: string, private readonly keyGroupOf: (key: unknown) => number, private readonly capacity = MIN_SLOTS_PER_GENERATION) {}

  slotFor(key: unknown): KeySlot {
    if (byValue(key)) {
      const slot = this.current.byValue.get(key);
      if (slot !== undefined) return slot;
      return this.promote(this.previous.byValue.get(key), key, key, undefined, this.current.byValue, this.previous.byValue);
    }
    const json = canonicalJson(key);
    const slot = this.current.byJson.get(json);
    if (slot !== undefined) return slot;
    return this.promote(this.previous.byJson.get(json), key, json, json, this.current.byJson, this.previous.byJson);
  }

  /**
   * The key's slot if the table holds one, else a new slot the table does not keep: a sorted drain runs
   * each key once, so keeping its slots would only churn the generations (and promote every slot, its
   * handles and addresses to the old heap before they die).
   */
  slotOnce(key: unknown, keyId: string, keyGroup: number): KeySlot {
    const slot = byValue(key) ? (this.current.byValue.get(key) ?? this.previous.byValue.get(key)) : (this.current.byJson.get(keyId) ?? this.previous.byJson.get(keyId));
    return slot ?? new KeySlot(this.operator, key, keyId, keyGroup);
  }

  private promote<M>(found: KeySlot | undefined, key: unknown, id: M, keyId: string | undefined, into: Map<M, KeySlot>, from: Map<M, KeySlot>): KeySlot {
    let slot = found;
    if (slot !== undefined) from.delete(id);
    else slot = new KeySlot(this.operator, key, keyId ?? canonicalJson(key), this.keyGroupOf(key));
    into.set(id, slot);
    if (this.current.byValue.size + this.current.byJson.size >= this.capacity) this.rotate();
    return slot;
  }

  /**
   * The busy slot whose running record started first (the lowest startedTick: the stall watch's, in
   * async-execution.ts), if any: every busy slot is in the table (rotate() keeps them). A walk of at most
   * two generations, ~0.2 ms for 24k slots (~2 ms for the most two generations hold).
   */
  oldestBusy(): KeySlot | undefined {
    let oldest: KeySlot | undefined;
    for (const g of [this.current, this.previous]) {
      for (const s of g.byValue.values()) if (s.busy && (oldest === undefined || s.startedTick < oldest.startedTick)) oldest = s;
      for (const s of g.byJson.values()) if (s.busy && (oldest === undefined || s.startedTick < oldest.startedTick)) oldest = s;
    }
    return oldest;
  }

  /** A new generation; slots of the dropped one that a record holds move into it (their lock is live). */
  private rotate(): void {
    const dropped = this.previous;
    this.previous = this.current;
    this.current = generation();
    for (const [k, s] of dropped.byValue) if (s.busy) this.current.byValue.set(k, s);
    for (const [k, s] of dropped.byJson) if (s.busy) this.current.byJson.set(k, s);
  }
}
