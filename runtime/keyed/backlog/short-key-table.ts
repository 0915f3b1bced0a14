// A hash table of short string keys (up to 16 characters, each below 256: ids, codes, names) to numbers,
// whose rows hold the key's characters and its number: a lookup reads one row of a typed array. The sort
// buffer looks every backlog record's key up (sort-buffer.ts); in a `Map` that missed the CPU's caches two
// or three times with many keys (its bucket, its entry, and the stored key string it compares the record's
// fresh one with): ~200 ns of a ~1 µs record in bench/prof-backlog.ts sorted 1000000 100000 reduce (50k
// keys a subtask), ~100 ns here. Longer keys, and keys with other characters, stay in a `Map`
// (StringKeyIndex). The key slots' table (key-slots.ts) gained nothing from it: it maps keys to objects,
// which a row cannot hold, and the extra array of them cost the load the row saved.

/** Characters a key may have (4 in each of 4 words). */
export const SHORT_KEY_MAX_LENGTH = 16;

/** Words of a row: the hash, the length + 1 (0: an empty row), the key's characters in 4 words, its number. */
const ROW = 7;
const FIRST_CAPACITY = 64;

/** A key packed into words, computed once per lookup and shared by the tables it is looked up in. */
export class ShortKey {
  hash = 0;
  length = 0;
  w0 = 0;
  w1 = 0;
  w2 = 0;
  w3 = 0;
  /** The key packed last (StringKeyIndex packs a key once for a lookup and the insertion after it). */
  key = "";

  /** Packs `key`; false when it does not fit (too long, or a character of 256 or more). */
  of(key: string): boolean {
    const n = key.length;
    if (n > SHORT_KEY_MAX_LENGTH) return false;
    let w0 = 0, w1 = 0, w2 = 0, w3 = 0;
    for (let i = 0; i < n; i++) {
      const c = key.charCodeAt(i);
      if (c > 255) return false;
      const shifted = c << ((i & 3) << 3);
      if (i < 4) w0 |= shifted;
      else if (i < 8) w1 |= shifted;
      else if (i < 12) w2 |= shifted;
      else w3 |= shifted;
    }
    // murmur3's finalizer over the words: rows are found by the low bits.
    let h = Math.imul(w0 ^ Math.imul(w1, 0x9e3779b1) ^ Math.imul(w2, 0x85ebca77) ^ Math.imul(w3 ^ n, 0xc2b2ae3d), 0x27d4eb2f);
    h ^= h >>> 15;
    h = Math.imul(h, 0x85ebca6b);
    h ^= h >>> 13;
    this.hash = h;
    this.length = n;
    this.w0 = w0;
    this.w1 = w1;
    this.w2 = w2;
    this.w3 = w3;
    this.key = key;
    return true;
  }
}

/** Open addressing with linear probing; a deletion shifts the rows after it back (no tombstones). */
export class ShortKeyTable {
  private rows = new Int32Array(FIRST_CAPACITY * ROW);
  private mask = FIRST_CAPACITY - 1;
  size = 0;

  /** The number of the packed key `k`, or -1. */
  get(k: ShortKey): number {
    const row = this.find(k);
    return row < 0 ? -1 : this.rows[row * ROW + 6]!;
  }

  /** `value`: a number from 0 to 2^31 - 1. */
  set(k: ShortKey, value: number): void {
    let row = this.find(k);
    if (row < 0) {
      if ((this.size + 1) * 2 > this.mask + 1) {
        this.grow();
        row = this.find(k);
      }
      row = -row - 1;
      const r = this.rows;
      const at = row * ROW;
      r[at] = k.hash;
      r[at + 1] = k.length + 1;
      r[at + 2] = k.w0;
      r[at + 3] = k.w1;
      r[at + 4] = k.w2;
      r[at + 5] = k.w3;
      this.size++;
    }
    this.rows[row * ROW + 6] = value;
  }

  delete(k: ShortKey): boolean {
    let row = this.find(k);
    if (row < 0) return false;
    const r = this.rows;
    const mask = this.mask;
    // Backward shift: each later row of the run moves into the hole unless its home lies after the hole.
    for (let next = (row + 1) & mask; r[next * ROW + 1] !== 0; next = (next + 1) & mask) {
      const home = r[next * ROW]! & mask;
      if (((next - home) & mask) >= ((next - row) & mask)) {
        r.copyWithin(row * ROW, next * ROW, next * ROW + ROW);
        row = next;
      }
    }
    r[row * ROW + 1] = 0;
    this.size--;
    return true;
  }

  /** The row of `k`, or -(the empty row where it would go) - 1. */
  private find(k: ShortKey): number {
    const r = this.rows;
    const mask = this.mask;
    const h = k.hash;
    const length = k.length + 1;
    for (let row = h & mask; ; row = (row + 1) & mask) {
      const at = row * ROW;
      const used = r[at + 1];
      if (used === 0) return -row - 1;
      if (r[at] === h && used === length && r[at + 2] === k.w0 && r[at + 3] === k.w1 && r[at + 4] === k.w2 && r[at + 5] === k.w3) return row;
    }
  }

  private grow(): void {
    const rows = this.rows;
    const oldCapacity = this.mask + 1;
    const capacity = oldCapacity * 2;
    this.rows = new Int32Array(capacity * ROW);
    this.mask = capacity - 1;
    const r = this.rows;
    for (let old = 0; old < oldCapacity; old++) {
      const from = old * ROW;
      if (rows[from + 1] === 0) continue;
      let row = rows[from]! & this.mask;
      while (r[row * ROW + 1] !== 0) row = (row + 1) & this.mask;
      const to = row * ROW;
      for (let w = 0; w < ROW; w++) r[to + w] = rows[from + w]!;
    }
  }
}

/** String keys to numbers: short ones in a ShortKeyTable, the others in a Map. */
export class StringKeyIndex {
  private readonly short = new ShortKeyTable();
  private readonly long = new Map<string, number>();
  /** The last key packed (a lookup, then the insertion of the same key, pack it once). */
  private readonly probe = new ShortKey();

  get size(): number { return this.short.size + this.long.size; }

  /** The key's number, or -1. */
  get(key: string): number {
    return this.fits(key) ? this.short.get(this.probe) : (this.long.get(key) ?? -1);
  }

  set(key: string, value: number): void {
    if (this.fits(key)) this.short.set(this.probe, value);
    else this.long.set(key, value);
  }

  delete(key: string): boolean {
    return this.fits(key) ? this.short.delete(this.probe) : this.long.delete(key);
  }

  private fits(key: string): boolean {
    const p = this.probe;
    return p.key === key && key !== "" ? true : p.of(key);
  }
}
