// Records that are plain objects of one shape travel as columns: JSON.parse builds an object per record
// much more slowly (a property map transition per field) than it reads arrays of strings and numbers, so a
// frame of {k, v} records decodes ~2x faster as {f: ["k","v"], c: [[k...], [v...]]} rebuilt into objects.
// Only when the columns give back exactly what JSON.stringify of each record would: plain objects, the
// same keys in the same order, no value JSON would drop from an object (undefined, functions, symbols).

/** A frame's records as columns: field names, and one array per field. */
export interface RecordColumns {
  readonly fields: string[];
  readonly columns: unknown[][];
}

const MAX_FIELDS = 32;

/** The records as columns, or undefined when they are not plain objects of one shape. */
export function toColumns(values: readonly unknown[]): RecordColumns | undefined {
  const first = values[0];
  if (!isPlainObject(first)) return undefined;
  const fields = Object.keys(first);
  const n = fields.length;
  if (n === 0 || n > MAX_FIELDS || fields.includes("__proto__")) return undefined;
  const columns = fields.map(() => new Array<unknown>(values.length));
  for (let i = 0; i < values.length; i++) {
    const value = values[i];
    if (!isPlainObject(value)) return undefined;
    let j = 0;
    for (const field in value) {
      if (j === n || field !== fields[j]) return undefined;
      const x = value[field];
      const type = typeof x;
      if (type === "undefined" || type === "function" || type === "symbol") return undefined;
      columns[j]![i] = x;
      j++;
    }
    if (j !== n) return undefined;
  }
  return { fields, columns };
}

/** The records back as objects (keys in the fields' order, as JSON.parse of each would give). */
export function fromColumns(fields: readonly string[], columns: readonly unknown[][]): unknown[] {
  const n = columns[0]?.length ?? 0;
  const m = fields.length;
  const values = new Array<unknown>(n);
  for (let i = 0; i < n; i++) {
    const value: Record<string, unknown> = {};
    for (let j = 0; j < m; j++) value[fields[j]!] = columns[j]![i];
    values[i] = value;
  }
  return values;
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  if (value === null || typeof value !== "object") return false;
  const proto = Object.getPrototypeOf(value);
  return proto === Object.prototype || proto === null;
}
