// Key groups as in Flink: keyGroup = murmur(hashCode(key)) % maxParallelism, and a subtask owns the
// contiguous KeyGroupRange computed from its index. hashCode follows Java for strings, ints, longs,
// doubles and booleans, so a key lands in the same group as in a Flink job keyed by the same values.

export const DEFAULT_MAX_PARALLELISM = 128;

/** Java's String.hashCode over UTF-16 code units. */
export function javaStringHash(s: string): number {
  let h = 0;
  for (let i = 0; i < s.length; i++) h = (Math.imul(h, 31) + s.charCodeAt(i)) | 0;
  return h;
}

const f64 = new Float64Array(1);
const u32 = new Uint32Array(f64.buffer);

/** Java's Double.hashCode: (int)(bits ^ (bits >>> 32)). */
function javaDoubleHash(d: number): number {
  f64[0] = d === 0 && 1 / d < 0 ? -0 : Number.isNaN(d) ? NaN : d;
  return (u32[0]! ^ u32[1]!) | 0;
}

/** Java's Long.hashCode for a safe integer outside the int range. */
function javaLongHash(n: number): number {
  const lo = Number(BigInt.asUintN(32, BigInt(n)));
  const hi = Number(BigInt.asUintN(32, BigInt(n) >> 32n));
  return (lo ^ hi) | 0;
}

/** Java-compatible hashCode of a key; objects and arrays hash their canonical JSON. */
export function keyHashCode(key: unknown): number {
  switch (typeof key) {
    case "string": return javaStringHash(key);
    case "number":
      if (Number.isInteger(key) && key >= -2147483648 && key <= 2147483647) return key | 0;
      if (Number.isSafeInteger(key)) return javaLongHash(key);
      return javaDoubleHash(key);
    case "boolean": return key ? 1231 : 1237;
    case "bigint": return javaLongHash(Number(BigInt.asIntN(64, key)));
    default: return javaStringHash(canonicalJson(key));
  }
}

/** JSON with object keys sorted, so equal objects hash and serialize equally. */
export function canonicalJson(value: unknown): string {
  if (value === null || typeof value !== "object") return JSON.stringify(value) ?? "null";
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(",")}]`;
  const entries: string[] = [];
  for (const k of Object.keys(value as object).sort()) {
    const field = (value as Record<string, unknown>)[k];
    // Left out as JSON.stringify leaves it out: `{ a: 1, b: undefined }` (an optional field) is the key
    // `{ a: 1 }` once it crossed an edge or was stored, and must not read back as `{ a: 1, b: null }`.
    if (field === undefined || typeof field === "function" || typeof field === "symbol") continue;
    entries.push(`${JSON.stringify(k)}:${canonicalJson(field)}`);
  }
  return `{${entries.join(",")}}`;
}

/** Flink's MathUtils.murmurHash: a non-negative int. */
export function murmurHash(code: number): number {
  code = Math.imul(code, 0xcc9e2d51);
  code = (code << 15) | (code >>> 17);
  code = Math.imul(code, 0x1b873593);
  code = (code << 13) | (code >>> 19);
  code = (Math.imul(code, 5) + 0xe6546b64) | 0;
  code ^= 4;
  code ^= code >>> 16;
  code = Math.imul(code, 0x85ebca6b);
  code ^= code >>> 13;
  code = Math.imul(code, 0xc2b2ae35);
  code ^= code >>> 16;
  if (code >= 0) return code;
  return code !== -2147483648 ? -code : 0;
}

export function assignToKeyGroup(key: unknown, maxParallelism: number): number {
  return murmurHash(keyHashCode(key)) % maxParallelism;
}

export function operatorIndexForKeyGroup(maxParallelism: number, parallelism: number, keyGroup: number): number {
  return Math.floor((keyGroup * parallelism) / maxParallelism);
}

/** The subtask that owns `key`. */
export function operatorIndexForKey(key: unknown, maxParallelism: number, parallelism: number): number {
  return operatorIndexForKeyGroup(maxParallelism, parallelism, assignToKeyGroup(key, maxParallelism));
}

/** An inclusive range of key groups, owned by one subtask. */
export class KeyGroupRange {
  constructor(readonly start: number, readonly end: number) {}

  static forOperator(maxParallelism: number, parallelism: number, index: number): KeyGroupRange {
    if (parallelism < 1 || parallelism > maxParallelism) {
      throw new RangeError(`parallelism ${parallelism} must be between 1 and maxParallelism ${maxParallelism}`);
    }
    const start = Math.floor((index * maxParallelism + parallelism - 1) / parallelism);
    const end = Math.floor(((index + 1) * maxParallelism - 1) / parallelism);
    return new KeyGroupRange(start, end);
  }

  get size(): number { return Math.max(0, this.end - this.start + 1); }
  contains(keyGroup: number): boolean { return keyGroup >= this.start && keyGroup <= this.end; }
  *[Symbol.iterator](): Iterator<number> { for (let g = this.start; g <= this.end; g++) yield g; }
  toString(): string { return `[${this.start}, ${this.end}]`; }
}
