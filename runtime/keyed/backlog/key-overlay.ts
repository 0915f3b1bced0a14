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

export class KeyStateOverlay implements StateRequestHandler {
  private readonly entries = new Map<string, Entry>();

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
        if (!this.entries.has(id)) this.entries.set(id, { value: v, dirty: false, address, owned: true });
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
    let writes: Array<Promise<unknown>> | undefined;
    for (const e of this.entries.values()) {
      if (!e.dirty || (pick !== undefined && !pick(e))) continue;
      e.dirty = false;
      const put = stateRequest.put(e.address, e.value);
      const now = this.backend.tryNow(put);
      // A write over the backend's dirty budget answers with the promise of room (backpressure).
      const pending = now === NOT_APPLIED ? this.backend.submit(put) : now instanceof Promise ? now : undefined;
      if (pending !== undefined) (writes ??= []).push(pending);
    }
    if (writes !== undefined) return Promise.all(writes).then(noop);
  }
}
