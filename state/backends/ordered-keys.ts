// The keys of one map state, iterated in sorted order by pages with a cursor (the last key returned).
// Sorting is lazy and kept across removals (removing from a sorted array keeps it sorted; removed keys are
// skipped), so "iterate and remove" costs one sort, not one per page.

export class OrderedKeys {
  private readonly keys = new Set<string>();
  private sorted: string[] | undefined;

  get size(): number { return this.keys.size; }
  has(key: string): boolean { return this.keys.has(key); }

  /** Returns true when the key was not there. */
  add(key: string): boolean {
    if (this.keys.has(key)) return false;
    this.keys.add(key);
    this.sorted = undefined;
    return true;
  }

  /** Returns true when the key was there. */
  delete(key: string): boolean {
    return this.keys.delete(key);
  }

  clear(): void {
    this.keys.clear();
    this.sorted = [];
  }

  [Symbol.iterator](): IterableIterator<string> { return this.keys.values(); }

  /** Up to `limit` keys after `cursor` (all keys when absent) in sorted order, and whether more follow. */
  page(cursor: string | undefined, limit: number): { keys: string[]; more: boolean } {
    const sorted = this.sortedKeys();
    let i = cursor === undefined ? 0 : upperBound(sorted, cursor);
    const keys: string[] = [];
    for (; i < sorted.length && keys.length < limit; i++) {
      const k = sorted[i]!;
      if (this.keys.has(k)) keys.push(k);
    }
    for (; i < sorted.length; i++) if (this.keys.has(sorted[i]!)) return { keys, more: true };
    return { keys, more: false };
  }

  private sortedKeys(): string[] {
    if (this.sorted === undefined || this.sorted.length > 2 * this.keys.size + 64) {
      this.sorted = [...this.keys].sort(compareStrings);
    }
    return this.sorted;
  }
}

/** Code-unit order, the same on every backend and independent of locale. */
export function compareStrings(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** Index of the first element greater than `x`. */
function upperBound(sorted: readonly string[], x: string): number {
  let lo = 0;
  let hi = sorted.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (sorted[mid]! <= x) lo = mid + 1; else hi = mid;
  }
  return lo;
}
