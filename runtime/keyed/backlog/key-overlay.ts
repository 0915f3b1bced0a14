// While a sorted backlog drains, one key's records run back to back: this handler keeps that key's state
// in memory (each entry read from the backend at most once) and writes what changed once, when the key is
// done, instead of a read and a write per record (FLIP-327: "one key's state in memory at a time").

import { NOT_APPLIED, StateRequestType as T, type StateAddress, type StateRequest, type StateRequestHandler } from "../../../state/contracts.ts";
import { stateRequest } from "../../../state/requests.ts";
import type { MaybePromise } from "../../contracts/operators.ts";

const noop = (): void => {};

/** `owned`: `value` is an array this overlay made (an append may extend it in place), not one a record passed in. */
interface Entry { value: unknown; dirty: boolean; address: StateAddress; owned: boolean }

/** What a Get hands out: a copy of a list, as the backends do (a later append must not change it). */
const copied = (value: unknown): unknown => (Array.isArray(value) ? value.slice() : value);

// Every address here is one key's of one operator: a plain entry is named by its state alone (a string
// that already exists, hash cached: no string is built per request), a map entry by state and user key.
const entryId = (a: StateAddress) => (a.userKeyId === undefined ? a.state : `${a.state}\u0000${a.userKeyId}`);
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

export class KeyStateOverlay implements StateRequestHandler {
  private readonly entries = new OverlayEntries();

  constructor(private readonly backend: StateRequestHandler) {}

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
    if (request.kind === T.Append) return this.appendHeld(address, request.value) ? undefined : NOT_APPLIED;
    if (request.kind !== T.Get) return NOT_APPLIED;
    const id = entryId(address);
    const e = this.entries.get(id);
    if (e) return copied(e.value);
    const v = this.backend.tryNow(request);
    if (v === NOT_APPLIED || v instanceof Promise) return NOT_APPLIED;
    this.entries.set(id, { value: v, dirty: false, address, owned: true });
    return copied(v);
  }

  async submit(request: StateRequest): Promise<unknown> {
    const address = request.address;
    switch (request.kind) {
      case T.Get: {
        const id = entryId(address);
        const e = this.entries.get(id);
        if (e) return copied(e.value);
        const v = await this.backend.submit(request);
        // A write may have happened while the read was out: it wins.
        if (this.entries.get(id) === undefined) this.entries.set(id, { value: v, dirty: false, address, owned: true });
        return copied(this.entries.get(id)!.value);
      }
      case T.Put:
        this.put(address, request.value);
        return undefined;
      case T.Append:
        // A list this overlay holds takes the append (a later read and the key's final write see it);
        // one it does not hold is appended where it lives.
        if (this.appendHeld(address, request.value)) return undefined;
        return this.backend.submit(request);
      default: {
        // Whole-map requests see the backend: write this map's changes first, then forget its entries.
        await this.flushWhere((e) => mapId(e.address) === mapId(address) && e.address.userKeyId !== undefined);
        if (request.kind === T.ClearMap) for (const [id, e] of this.entries) if (mapId(e.address) === mapId(address) && e.address.userKeyId !== undefined) this.entries.delete(id);
        return this.backend.submit(request);
      }
    }
  }

  private put(address: StateAddress, value: unknown): void {
    const id = entryId(address);
    const e = this.entries.get(id);
    if (e === undefined) this.entries.set(id, { value, dirty: true, address, owned: false });
    else {
      e.value = value;
      e.dirty = true;
      e.owned = false;
    }
  }

  /** Appends to the list entry this overlay holds for `address`; false when it holds none. */
  private appendHeld(address: StateAddress, values: readonly unknown[]): boolean {
    const e = this.entries.get(entryId(address));
    if (e === undefined) return false;
    if (!Array.isArray(e.value)) e.value = values.slice();
    else {
      if (!e.owned) e.value = e.value.slice();
      for (const v of values) (e.value as unknown[]).push(v); // no spread: a huge addAll would overflow the stack
    }
    e.owned = true;
    e.dirty = true;
    return true;
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
