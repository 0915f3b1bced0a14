// While a sorted backlog drains, one key's records run back to back: this handler keeps that key's state
// in memory (each entry read from the backend at most once) and writes what changed once, when the key is
// done, instead of a read and a write per record (FLIP-327: "one key's state in memory at a time").
// In batch mode it is the key's whole state while the key runs and is never written back (Ephemeral):
// appends and whole-map requests stay in it too, and each write is checked as the backends check it.

import { NOT_APPLIED, StateRequestType as T, type ScanPage, type StateAddress, type StateRequest, type StateRequestHandler } from "../../../state/contracts.ts";
import { entryAddress } from "../../../state/handles/address.ts";
import { OrderedKeys } from "../../../state/backends/ordered-keys.ts";
import { scanLimit } from "../../../state/backends/request-checks.ts";
import { stateRequest } from "../../../state/requests.ts";
import { serialize, tooLarge, valueJson } from "../../../state/backends/jetstream-kv/entry-json.ts";
import { toStateJson } from "../../../state/backends/json-safe.ts";
import type { MaybePromise } from "../../contracts/operators.ts";

const noop = (): void => {};

/**
 * `owned`: `value` is an array this overlay made (an append may extend it in place), not one a record passed
 * in. `jsonLength`: the value's JSON length when known (-1 not), for the size check of an append (Ephemeral).
 */
interface Entry { value: unknown; dirty: boolean; address: StateAddress; owned: boolean; jsonLength: number }

/**
 * Batch mode's overlay: what streaming writes to a backend stays here, so the backend's checks run here: a
 * value that cannot be stored as JSON (a Map, a Set, a function in it) or is over `maxValueBytes` fails the
 * write with the backends' own message (state/backends/heap.ts), instead of passing a bounded test that
 * streaming would fail. Appends to a list not held read it and stay here, and a map's first whole-map request
 * (an iteration, `isEmpty`, `clear`) reads the map whole and serves it from here: both went to the backend,
 * which kept every key's lists and maps after the job (in KV, read by the job's next run).
 */
export interface Ephemeral { readonly maxValueBytes: number }

/** What a Get hands out: a copy of a list, as the backends do (a later append must not change it). */
const copied = (value: unknown): unknown => (Array.isArray(value) ? value.slice() : value);

// Every address here is one key's of one operator: a plain entry is named by its state alone (a string
// that already exists, hash cached: no string is built per request), a map entry by state and user key.
const entryId = (a: StateAddress) => (a.userKeyId === undefined ? a.state : mapEntryId(a.state, a.userKeyId));
const mapEntryId = (state: string, userKeyId: string) => `${state}\u0000${userKeyId}`;
const mapId = (a: StateAddress) => a.state;

/**
 * A key's entries by id: most keys use one state entry, kept in fields; a Map only from the second (a
 * sorted drain makes an overlay per key: a Map each was a tenth of its allocation).
 */
class OverlayEntries {
  private firstId: string | undefined;
  first: Entry | undefined;
  more: Map<string, Entry> | undefined;

  get(id: string): Entry | undefined {
    return this.first !== undefined && this.firstId === id ? this.first : this.more?.get(id);
  }

  set(id: string, e: Entry): void {
    // Once the first entry was deleted, new ones go after the others, as in a Map (writes keep that order).
    if (this.firstId === undefined || (this.firstId === id && this.first !== undefined)) {
      this.firstId = id;
      this.first = e;
    } else (this.more ??= new Map()).set(id, e);
  }

  delete(id: string): void {
    if (this.first !== undefined && this.firstId === id) this.first = undefined;
    else this.more?.delete(id);
  }

  *[Symbol.iterator](): IterableIterator<[string, Entry]> {
    if (this.first !== undefined) yield [this.firstId!, this.first];
    if (this.more) yield* [...this.more];
  }
}

/** Entries a map scan returns a page at a time, as the heap backend does. */
const SCAN_PAGE = 256;

export class KeyStateOverlay implements StateRequestHandler {
  private readonly entries = new OverlayEntries();
  /** Ephemeral: the maps held whole (read whole at their first whole-map request), with their user keys. */
  private wholeMaps: Map<string, OrderedKeys> | undefined;

  constructor(private readonly backend: StateRequestHandler, private readonly ephemeral?: Ephemeral) {}

  /**
   * Fast path (one key's sorted records): reads it holds (or the backend answers at once) and writes,
   * without a promise, since a key's records read and write the same entries over and over; the rest:
   * NOT_APPLIED.
   */
  tryNow(request: StateRequest): unknown {
    const address = request.address;
    if (request.kind === T.Put) {
      this.put(address, request.value);
      return undefined;
    }
    if (request.kind === T.Append) {
      if (this.appendHeld(address, request.value)) return undefined;
      if (this.ephemeral === undefined || this.load(stateRequest.get(address)) === NOT_APPLIED) return NOT_APPLIED;
      this.appendHeld(address, request.value);
      return undefined;
    }
    if (request.kind === T.Scan || request.kind === T.ClearMap) {
      if (this.ephemeral === undefined) return NOT_APPLIED;
      if (request.kind === T.ClearMap) return void this.holdWhole(address);
      const keys = this.wholeMaps?.get(mapId(address));
      return keys === undefined ? NOT_APPLIED : this.pageOf(request, keys);
    }
    if (request.kind !== T.Get) return NOT_APPLIED;
    const e = this.entries.get(entryId(address));
    if (e) return copied(e.value);
    if (this.heldWhole(address)) return undefined;
    const v = this.load(request);
    return v === NOT_APPLIED ? v : copied(v);
  }

  /** The backend's value for `get` when it answers at once (now held), else NOT_APPLIED. */
  private load(get: StateRequest): unknown {
    const v = this.backend.tryNow(get);
    if (v === NOT_APPLIED || v instanceof Promise) return NOT_APPLIED;
    this.holdRead(entryId(get.address), get.address, v);
    return v;
  }

  async submit(request: StateRequest): Promise<unknown> {
    const address = request.address;
    switch (request.kind) {
      case T.Get: {
        const id = entryId(address);
        const e = this.entries.get(id);
        if (e) return copied(e.value);
        if (this.heldWhole(address)) return undefined;
        this.holdRead(id, address, await this.backend.submit(request));
        return copied(this.entries.get(id)!.value);
      }
      case T.Put:
        this.put(address, request.value);
        return undefined;
      case T.Append: {
        // A list this overlay holds takes the append (a later read and the key's final write see it);
        // one it does not hold is appended where it lives, except in batch mode, where it is read first.
        if (this.appendHeld(address, request.value)) return undefined;
        if (this.ephemeral === undefined) return this.backend.submit(request);
        this.holdRead(entryId(address), address, await this.backend.submit(stateRequest.get(address)));
        this.appendHeld(address, request.value);
        return undefined;
      }
      default: {
        if (this.ephemeral !== undefined) {
          if (request.kind === T.ClearMap) return void this.holdWhole(address);
          return this.pageOf(request, this.wholeMaps?.get(mapId(address)) ?? (await this.readWhole(address)));
        }
        // Whole-map requests see the backend: write this map's changes first, then forget its entries.
        await this.flushWhere((e) => mapId(e.address) === mapId(address) && e.address.userKeyId !== undefined);
        if (request.kind === T.ClearMap) for (const [id, e] of this.entries) if (mapId(e.address) === mapId(address) && e.address.userKeyId !== undefined) this.entries.delete(id);
        return this.backend.submit(request);
      }
    }
  }

  /** Holds what the backend read for `address`, unless the entry is held already (a write while the read was out wins). */
  private holdRead(id: string, address: StateAddress, value: unknown): void {
    if (this.entries.get(id) === undefined) this.entries.set(id, { value, dirty: false, address, owned: true, jsonLength: -1 });
  }

  private put(address: StateAddress, value: unknown): void {
    // Checked before anything changes, as the backends check a write.
    const jsonLength = this.ephemeral === undefined ? -1 : (valueJson(value, address, this.ephemeral.maxValueBytes)?.length ?? -1);
    const id = entryId(address);
    const e = this.entries.get(id);
    if (e === undefined) this.entries.set(id, { value, dirty: true, address, owned: false, jsonLength });
    else {
      e.value = value;
      e.dirty = true;
      e.owned = false;
      e.jsonLength = jsonLength;
    }
    const keys = address.userKeyId === undefined ? undefined : this.wholeMaps?.get(mapId(address));
    if (keys !== undefined) {
      if (value === undefined) keys.delete(address.userKeyId!);
      else keys.add(address.userKeyId!);
    }
  }

  /** Ephemeral: whether `address`'s map is held whole (an entry it does not hold is absent). */
  private heldWhole(address: StateAddress): boolean {
    return address.userKeyId !== undefined && this.wholeMaps?.has(mapId(address)) === true;
  }

  /** Ephemeral: reads `address`'s map whole from the backend (entries written meanwhile win) and holds it. */
  private async readWhole(address: StateAddress): Promise<OrderedKeys> {
    let cursor: string | undefined;
    do {
      const page = (await this.backend.submit(stateRequest.scan(address, cursor, SCAN_PAGE))) as ScanPage;
      // Held whole meanwhile (a clear, or another read, not awaited before this one): this map is its own now.
      if (this.wholeMaps?.has(mapId(address))) break;
      for (const [userKeyId, value] of page.entries) {
        this.holdRead(mapEntryId(address.state, userKeyId), entryAddress(address, userKeyId), value);
      }
      cursor = page.cursor;
    } while (cursor !== undefined);
    return this.wholeMaps?.get(mapId(address)) ?? this.holdWhole(address, false);
  }

  /** Ephemeral: holds `address`'s map whole from its entries held now (`cleared`: all of them removed). */
  private holdWhole(address: StateAddress, cleared = true): OrderedKeys {
    const keys = new OrderedKeys();
    for (const [, e] of this.entries) {
      if (e.address.userKeyId === undefined || mapId(e.address) !== mapId(address)) continue;
      if (cleared) {
        e.value = undefined;
        e.dirty = true;
        e.owned = false;
        e.jsonLength = -1;
      } else if (e.value !== undefined) keys.add(e.address.userKeyId);
    }
    (this.wholeMaps ??= new Map()).set(mapId(address), keys);
    return keys;
  }

  /** A page of a map held whole (a Scan). */
  private pageOf(request: StateRequest, keys: OrderedKeys): ScanPage {
    const cursor = request.kind === T.Scan ? request.cursor : undefined;
    const page = keys.page(cursor, scanLimit(request.kind === T.Scan ? request.limit : undefined, SCAN_PAGE));
    const entries = page.keys.map((k) => [k, copied(this.entries.get(mapEntryId(request.address.state, k))!.value)] as const);
    return page.more ? { entries, cursor: page.keys[page.keys.length - 1]! } : { entries };
  }

  /** Appends to the list entry this overlay holds for `address`; false when it holds none. */
  private appendHeld(address: StateAddress, values: readonly unknown[]): boolean {
    const e = this.entries.get(entryId(address));
    if (e === undefined) return false;
    if (this.ephemeral !== undefined) e.jsonLength = this.appendedLength(e, values, this.ephemeral.maxValueBytes);
    if (!Array.isArray(e.value)) e.value = values.slice();
    else {
      if (!e.owned) e.value = e.value.slice();
      for (const v of values) (e.value as unknown[]).push(v); // no spread: a huge addAll would overflow the stack
    }
    e.owned = true;
    e.dirty = true;
    return true;
  }

  /** As the heap backend appends: the list's JSON length after `values` (known without serializing it), within `max`. */
  private appendedLength(e: Entry, values: readonly unknown[], max: number): number {
    const added = serialize(values, e.address, max).length;
    if (!Array.isArray(e.value) || e.value.length === 0) return added;
    // "[a,b]" + "[c]" = "[a,b,c]"
    const length = (e.jsonLength >= 0 ? e.jsonLength : toStateJson(e.value)!.length) + added - 1;
    if (length > max) throw tooLarge(e.address, length, max);
    return length;
  }

  /** Writes every changed entry (once per entry, however many records changed it); resolves when written. */
  flush(): MaybePromise {
    return this.flushWhere(undefined);
  }

  /**
   * Writes the changed entries `pick` selects (all when undefined); what the backend takes at once (a
   * cached KV entry, the heap) needs no promise.
   */
  private flushWhere(pick: ((e: Entry) => boolean) | undefined): MaybePromise {
    // The first entry apart: no iterator for the one entry most keys have.
    let writes = this.write(this.entries.first, pick, undefined);
    const more = this.entries.more;
    if (more !== undefined) for (const e of more.values()) writes = this.write(e, pick, writes);
    if (writes === undefined) return undefined;
    // Most keys write one entry: its promise as it is (no Promise.all and then per key).
    return writes.length === 1 ? writes[0] as Promise<void> : Promise.all(writes).then(noop);
  }

  private write(e: Entry | undefined, pick: ((e: Entry) => boolean) | undefined, writes: Array<Promise<unknown>> | undefined): Array<Promise<unknown>> | undefined {
    if (e === undefined || !e.dirty || (pick !== undefined && !pick(e))) return writes;
    e.dirty = false;
    const put = stateRequest.put(e.address, e.value);
    const now = this.backend.tryNow(put);
    // A write over the backend's dirty budget answers with the promise of room (backpressure).
    const pending = now === NOT_APPLIED ? this.backend.submit(put) : now instanceof Promise ? now : undefined;
    if (pending !== undefined) (writes ??= []).push(pending);
    return writes;
  }
}
