// One key's records of a backlog sort buffer as they are drained (sort-buffer.ts keeps them in columns,
// buffered-keys.ts, until then), and how a key is written to a spilled run and read back
// (spilled-runs.ts): one JSON entry per key, its records in arrival order.

/**
 * Folding on arrival (a reduce): `fold(acc, value)` is the function a key's records would be applied with
 * one after another; `canFold` says whether a key seen for the first time starts from empty state that
 * nothing else changes before the drain. Only until the first spill: a key's running value must never be
 * combined with another one (that would need the function to be associative), so after a spill a key's
 * records are kept as they come, after at most one folded value.
 */
export interface ArrivalFold {
  canFold(key: unknown, keyGroup: number, keyId: string): boolean;
  fold(acc: unknown, value: unknown, key: unknown): unknown;
}

/** A key's records as spilled: key id, values, records folded into the first value (0: not folded), metadata. */
export type SpilledEntry = [string, unknown[], number, Array<number | string>?];

// JSON has no NaN or infinities (no timestamp, the initial watermark): those are written as strings.
const encodeNumber = (n: number): number | string => (Number.isFinite(n) ? n : String(n));
const decodeNumber = (n: number | string): number => (typeof n === "number" ? n : Number(n));

/**
 * One key's records in arrival order: their values, and (3 numbers per record) the arrival watermark,
 * timestamp (NaN: none) and input, kept only once a record of the key differs from the defaults (the
 * buffer's starting watermark, no timestamp, input 0).
 */
export class SortedKey {
  /**
   * The values, in an array of their exact length while there are one or two (a key read back from a run
   * may be appended to): a pushed-to empty array would reserve 16 slots.
   */
  values: readonly unknown[] = [];
  private meta: number[] | undefined;
  /** Records this key holds: more than its values when records were folded on arrival. */
  count = 0;
  /** Records are folded into values[0] as they arrive (see ArrivalFold). */
  folding = false;

  constructor(readonly keyGroup: number, readonly keyId: string, private readonly defaultWatermark: number) {}

  get size(): number { return this.values.length; }

  push(value: unknown, watermark: number, timestamp: number | undefined, input: number, records = 1): void {
    this.count += records;
    const meta = this.meta;
    if (meta !== undefined) meta.push(watermark, timestamp ?? Number.NaN, input);
    else if (watermark !== this.defaultWatermark || timestamp !== undefined || input !== 0) {
      const m: number[] = [];
      for (let i = 0; i < this.values.length; i++) m.push(this.defaultWatermark, Number.NaN, 0);
      m.push(watermark, timestamp ?? Number.NaN, input);
      this.meta = m;
    }
    const values = this.values as unknown[];
    if (values.length === 0) this.values = [value];
    else if (values.length === 1) this.values = [values[0], value];
    else values.push(value);
  }

  watermark(i: number): number { return this.meta === undefined ? this.defaultWatermark : this.meta[3 * i]!; }
  timestamp(i: number): number | undefined {
    const t = this.meta === undefined ? Number.NaN : this.meta[3 * i + 1]!;
    return Number.isNaN(t) ? undefined : t;
  }
  input(i: number): number { return this.meta === undefined ? 0 : this.meta[3 * i + 2]!; }

  /** Appends `later`'s records (the same key's, which arrived after these). */
  append(later: SortedKey): void {
    for (let i = 0; i < later.size; i++) this.push(later.values[i], later.watermark(i), later.timestamp(i), later.input(i), later.folding ? later.count : 1);
  }

  /** The key's records as a JSON-ready entry (see appendSpilled). */
  spilled(): SpilledEntry {
    const entry: SpilledEntry = [this.keyId, this.values as unknown[], this.folding ? this.count : 0];
    if (this.meta !== undefined) entry.push(this.meta.map(encodeNumber));
    return entry;
  }

  /** A key's records as the sort buffer held them (buffered-keys.ts); `meta` only when one differs from the defaults. */
  static of(keyGroup: number, keyId: string, defaultWatermark: number, values: unknown[], meta: number[] | undefined, count: number, folding: boolean): SortedKey {
    const key = new SortedKey(keyGroup, keyId, defaultWatermark);
    key.values = values;
    key.meta = meta;
    key.count = count;
    key.folding = folding;
    return key;
  }

  /**
   * A key read back from a run: its entry's values array (parsed, so its own) is kept as it is when it
   * carries no metadata, instead of pushed value by value.
   */
  static fromSpilled(keyGroup: number, entry: SpilledEntry, defaultWatermark: number): SortedKey {
    const key = new SortedKey(keyGroup, entry[0], defaultWatermark);
    const [, values, folded, meta] = entry;
    if (meta !== undefined) key.appendSpilled(entry);
    else {
      key.values = values;
      key.count = values.length + (folded > 0 ? folded - 1 : 0);
    }
    return key;
  }

  /** Appends the records of a `spilled()` entry of this key (the same key's, which arrived after these). */
  appendSpilled(entry: SpilledEntry): void {
    const [, values, folded, meta] = entry;
    for (let i = 0; i < values.length; i++) {
      const records = i === 0 && folded > 0 ? folded : 1;
      if (meta === undefined) this.push(values[i], this.defaultWatermark, undefined, 0, records);
      else {
        const t = decodeNumber(meta[3 * i + 1]!);
        this.push(values[i], decodeNumber(meta[3 * i]!), Number.isNaN(t) ? undefined : t, meta[3 * i + 2] as number, records);
      }
    }
  }
}
