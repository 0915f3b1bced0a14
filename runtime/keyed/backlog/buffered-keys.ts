// The sort buffer's keys and records while in memory (sort-buffer.ts), in columns: a key is a slot in a
// few typed arrays (its key group, count, first and last record), a record a slot in another few (its
// value, the next record of its key, and, once any record differs from the defaults, its arrival
// watermark, timestamp and input). Keys and records were an object and an array per key: ~200 bytes a
// key besides its records, so a backlog of many keys with a record or two each spilled three times over
// a 64 MB budget where columns hold it with one spill (bench/prof-backlog.ts sorted 1000000 500000),
// and the objects, all surviving, were what young-generation collections copied. A key's records come
// out as a SortedKey, made when the key is spilled or drained.

import { canonicalJson } from "../../../state/key-groups.ts";
import { SortedKey, type ArrivalFold } from "./sorted-key.ts";

/** No slot (an empty list's end). */
const NONE = -1;
const FIRST_CAPACITY = 1024;
/** Growth of the columns: capacity left unused is at most a third of what is used. */
const GROWTH = 1.5;

const STRING_KEY = 1;
const FOLDING = 2;

function grownInt32(a: Int32Array<ArrayBuffer>, capacity: number): Int32Array<ArrayBuffer> {
  const b = new Int32Array(capacity);
  b.set(a);
  return b;
}

function grownFloat64(a: Float64Array<ArrayBuffer>, capacity: number, fill: number): Float64Array<ArrayBuffer> {
  const b = new Float64Array(capacity);
  b.set(a);
  b.fill(fill, a.length);
  return b;
}

export class BufferedKeys {
  // Per key slot. `mapKey`: how the sort buffer looks the key up: a string key itself (flag STRING_KEY),
  // else the key's id (its canonical JSON).
  private mapKey: Array<string | undefined> = [];
  private flags = new Uint8Array(FIRST_CAPACITY);
  private group = new Int32Array(FIRST_CAPACITY);
  private head = new Int32Array(FIRST_CAPACITY);
  private tail = new Int32Array(FIRST_CAPACITY);
  /** Records of the key (more than it holds when folded on arrival). */
  private count = new Float64Array(FIRST_CAPACITY);
  private keySlots = 0;
  /** Freed key slots, linked through `head`. */
  private freeKeys = NONE;

  // Per record slot.
  private value: unknown[] = [];
  private next = new Int32Array(FIRST_CAPACITY);
  /** Arrival watermark, timestamp (NaN: none) and input: only once a record differs from the defaults. */
  private watermark: Float64Array<ArrayBuffer> | undefined;
  private timestamp: Float64Array<ArrayBuffer> | undefined;
  private input: Int32Array<ArrayBuffer> | undefined;
  private recordSlots = 0;
  /** Freed record slots, linked through `next`. */
  private freeRecords = NONE;

  /** `defaultWatermark`: the buffer's starting watermark, what a record without metadata arrived under. */
  constructor(private readonly defaultWatermark: number) {}

  /** A new key (no records yet); `stringKey`: `mapKey` is the key itself, a string. */
  newKey(mapKey: string, stringKey: boolean, keyGroup: number, folding: boolean): number {
    let k = this.freeKeys;
    if (k !== NONE) this.freeKeys = this.head[k]!;
    else {
      k = this.keySlots++;
      if (k === this.group.length) this.growKeys();
    }
    this.mapKey[k] = mapKey;
    this.flags[k] = (stringKey ? STRING_KEY : 0) | (folding ? FOLDING : 0);
    this.group[k] = keyGroup;
    this.head[k] = NONE;
    this.tail[k] = NONE;
    this.count[k] = 0;
    return k;
  }

  /** Whether records' arrival watermark, timestamp and input are kept (once one differed from the defaults). */
  get keepsMetadata(): boolean { return this.watermark !== undefined; }

  keyGroup(k: number): number { return this.group[k]!; }
  folding(k: number): boolean { return (this.flags[k]! & FOLDING) !== 0; }
  mapKeyOf(k: number): string { return this.mapKey[k]!; }
  isStringKey(k: number): boolean { return (this.flags[k]! & STRING_KEY) !== 0; }

  /** Appends a record to key `k`. */
  push(k: number, value: unknown, watermark: number, timestamp: number | undefined, input: number): void {
    let r = this.freeRecords;
    if (r !== NONE) this.freeRecords = this.next[r]!;
    else {
      r = this.recordSlots++;
      if (r === this.next.length) this.growRecords();
    }
    this.value[r] = value;
    this.next[r] = NONE;
    this.setMeta(r, watermark, timestamp, input);
    const tail = this.tail[k]!;
    if (tail === NONE) this.head[k] = r;
    else this.next[tail] = r;
    this.tail[k] = r;
    this.count[k]!++;
  }

  /** Folds a record into key `k`'s one value (see ArrivalFold); the key keeps the last record's metadata. */
  fold(k: number, value: unknown, fold: ArrivalFold, key: unknown, watermark: number, timestamp: number | undefined, input: number): void {
    const r = this.head[k]!;
    if (r === NONE) {
      this.push(k, value, watermark, timestamp, input);
      return;
    }
    const acc = this.value[r];
    this.value[r] = acc === undefined ? value : fold.fold(acc, value, key);
    this.setMeta(r, watermark, timestamp, input);
    this.count[k]!++;
  }

  /** Key `k` with its records in arrival order, as a SortedKey; its slots are freed. */
  take(k: number): SortedKey {
    const n = this.listLength(k);
    const values = new Array<unknown>(n);
    let meta: number[] | undefined;
    let r = this.head[k]!;
    for (let i = 0; i < n; i++) {
      values[i] = this.value[r];
      this.value[r] = undefined;
      if (this.watermark !== undefined && meta === undefined && !this.isDefault(r)) meta = this.defaultMeta(i);
      if (meta !== undefined) meta.push(this.watermark![r]!, this.timestamp![r]!, this.input![r]!);
      const next = this.next[r]!;
      this.next[r] = this.freeRecords;
      this.freeRecords = r;
      r = next;
    }
    const mapKey = this.mapKey[k]!;
    const stringKey = this.isStringKey(k);
    const taken = SortedKey.of(this.group[k]!, stringKey ? canonicalJson(mapKey) : mapKey, this.defaultWatermark, values, meta, this.count[k]!, this.folding(k));
    this.mapKey[k] = undefined;
    this.head[k] = this.freeKeys;
    this.freeKeys = k;
    return taken;
  }

  /**
   * Records listed for key `k`, from its count, not by walking its list: a key's records are scattered
   * over the columns (keys arrive interleaved), so a walk missed the CPU's caches once per record.
   */
  private listLength(k: number): number {
    if (this.folding(k)) return this.head[k] === NONE ? 0 : 1; // folded on arrival: one running value
    return this.count[k]!;
  }

  private isDefault(r: number): boolean {
    return this.watermark![r] === this.defaultWatermark && Number.isNaN(this.timestamp![r]!) && this.input![r] === 0;
  }

  /** The metadata of `n` records at the defaults. */
  private defaultMeta(n: number): number[] {
    const meta: number[] = [];
    for (let i = 0; i < n; i++) meta.push(this.defaultWatermark, Number.NaN, 0);
    return meta;
  }

  private setMeta(r: number, watermark: number, timestamp: number | undefined, input: number): void {
    if (this.watermark === undefined) {
      if (watermark === this.defaultWatermark && timestamp === undefined && input === 0) return;
      const capacity = this.next.length;
      this.watermark = new Float64Array(capacity).fill(this.defaultWatermark);
      this.timestamp = new Float64Array(capacity).fill(Number.NaN);
      this.input = new Int32Array(capacity);
    }
    this.watermark[r] = watermark;
    this.timestamp![r] = timestamp ?? Number.NaN;
    this.input![r] = input;
  }

  private growKeys(): void {
    const capacity = Math.ceil(this.group.length * GROWTH);
    const flags = new Uint8Array(capacity);
    flags.set(this.flags);
    this.flags = flags;
    this.group = grownInt32(this.group, capacity);
    this.head = grownInt32(this.head, capacity);
    this.tail = grownInt32(this.tail, capacity);
    this.count = grownFloat64(this.count, capacity, 0);
  }

  private growRecords(): void {
    const capacity = Math.ceil(this.next.length * GROWTH);
    this.next = grownInt32(this.next, capacity);
    if (this.watermark !== undefined) {
      this.watermark = grownFloat64(this.watermark, capacity, this.defaultWatermark);
      this.timestamp = grownFloat64(this.timestamp!, capacity, Number.NaN);
      this.input = grownInt32(this.input!, capacity);
    }
  }
}
