// Strict per-key order (FLIP-425, the default agreed in the seed thread): a record whose key already has
// a record in flight waits in the blocking buffer, before its processElement starts, and starts when the
// earlier one finishes. FIFO per key, so same-key records (and timers) run in arrival order.

export class KeyAccountingUnit<T> {
  /** key → records waiting behind the one in flight; null: occupied, nobody waiting (no array per record). */
  private readonly occupied = new Map<string, T[] | null>();
  private blocked = 0;

  get blockedRecords(): number { return this.blocked; }
  get blockedKeys(): number {
    let n = 0;
    for (const q of this.occupied.values()) if (q && q.length > 0) n++;
    return n;
  }
  get keysInFlight(): number { return this.occupied.size; }

  /** true: `key` was free and is now occupied by the caller; false: `item` was queued behind it. */
  tryOccupy(key: string, item: T): boolean {
    const q = this.occupied.get(key);
    if (q === undefined) {
      this.occupied.set(key, null);
      return true;
    }
    if (q === null) this.occupied.set(key, [item]);
    else q.push(item);
    this.blocked++;
    return false;
  }

  /** The key's current record finished: returns the next one to run (it now occupies the key), if any. */
  release(key: string): T | undefined {
    const q = this.occupied.get(key);
    if (q === undefined) return undefined;
    const next = q === null ? undefined : q.shift();
    if (next === undefined) this.occupied.delete(key);
    else this.blocked--;
    return next;
  }
}
