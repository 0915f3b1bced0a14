// Records that are plain objects of one shape travel as columns: JSON.parse builds an object per record
// much more slowly (a property map transition per field) than it reads arrays of strings and numbers, so a
// frame of {k, v} records decodes ~2x faster as {f: ["k","v"], c: [[k...], [v...]]} rebuilt into objects.
// Only when the columns give back exactly what JSON.stringify of each record would: plain objects, the
// same keys in the same order, no value JSON would drop from an object (undefined, functions, symbols).
// A column of strings goes as one string joined by a separator none of them contains: JSON.parse looks
// every short string up in the engine's string table, which with many distinct keys (100k) costs more
// than the parse itself; splitting one string does not.

/** A frame's records as columns: field names, and one column per field. */
export interface RecordColumns {
  readonly fields: string[];
  readonly columns: WireColumn[];
}

/** A column as sent: its values, or its strings joined by `s`. */
export type WireColumn = unknown[] | { readonly s: string; readonly j: string };

/** Tried in turn; one byte each in JSON. */
const SEPARATORS = ["|", "~", "^"];

const MAX_FIELDS = 32;

/** The records as columns, or undefined when they are not plain objects of one shape. */
export function toColumns(values: readonly unknown[]): RecordColumns | undefined {
  const first = values[0];
  if (!isPlainObject(first)) return undefined;
  const fields = Object.keys(first);
  const n = fields.length;
  if (n === 0 || n > MAX_FIELDS || fields.includes("__proto__")) return undefined;
  const columns = fields.map(() => new Array<unknown>(values.length));
  const strings = fields.map(() => true);
  for (let i = 0; i < values.length; i++) {
    const value = values[i];
    if (!isPlainObject(value)) return undefined;
    let j = 0;
    for (const field in value) {
      if (j === n || field !== fields[j]) return undefined;
      const x = value[field];
      const type = typeof x;
      if (type === "undefined" || type === "function" || type === "symbol") return undefined;
      if (type !== "string") strings[j] = false;
      columns[j]![i] = x;
      j++;
    }
    if (j !== n) return undefined;
  }
  return { fields, columns: columns.map((c, j) => (strings[j] ? joined(c as string[]) : c)) };
}

function joined(column: string[]): WireColumn {
  if (column.length < 2) return column;
  for (const s of SEPARATORS) {
    const j = column.join(s);
    if (occurrences(j, s) === column.length - 1) return { s, j };
  }
  return column;
}

function occurrences(text: string, s: string): number {
  let n = 0;
  for (let i = text.indexOf(s); i !== -1; i = text.indexOf(s, i + 1)) n++;
  return n;
}

/** The records back as objects (keys in the fields' order, as JSON.parse of each would give). */
export function fromColumns(fields: readonly string[], wire: readonly WireColumn[]): unknown[] {
  return objectsOf(fields, columnsOf(wire));
}

function columnsOf(wire: readonly WireColumn[]): unknown[][] {
  return wire.map((c) => (Array.isArray(c) ? c : c.j.split(c.s)));
}

function objectsOf(fields: readonly string[], columns: readonly unknown[][]): unknown[] {
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

type ObjectsOf = (columns: readonly unknown[][]) => unknown[];

/** Field lists a RecordBuilder makes a function for; frames of other shapes are built field by field. */
const MAX_SHAPES = 64;

/**
 * Rebuilds a consumer's records from their columns with a function per field list, made once, whose
 * object literal creates each record with all its fields at once: adding them one by one (fromColumns)
 * walks a hidden-class transition per field, ~5x the time (1M {k, v} records: 45-98 ms against 9-13).
 * Field names are written into it as JSON string literals (valid JavaScript); `__proto__`, which a literal
 * would take as the prototype, and anything but a list of strings are built field by field, as are
 * frames of more shapes than MAX_SHAPES and everything where code generation is disallowed.
 */
export class RecordBuilder {
  private readonly shapes = new Map<string, ObjectsOf>();
  private generating = true;

  records(fields: readonly string[], wire: readonly WireColumn[]): unknown[] {
    const columns = columnsOf(wire);
    const make = this.generating ? this.shapeOf(fields, columns.length) : undefined;
    return make === undefined ? objectsOf(fields, columns) : make(columns);
  }

  private shapeOf(fields: readonly string[], columnCount: number): ObjectsOf | undefined {
    if (fields.length === 0 || fields.length > MAX_FIELDS || columnCount !== fields.length) return undefined;
    // Checked before the lookup, and named by their JSON: a frame whose names are no strings, or join to
    // another list's, must not get that list's function.
    if (!fields.every((f) => typeof f === "string" && f !== "__proto__")) return undefined;
    const id = JSON.stringify(fields);
    const known = this.shapes.get(id);
    if (known !== undefined || this.shapes.size >= MAX_SHAPES) return known;
    const literal = fields.map((f, j) => `${JSON.stringify(f)}: c${j}[i]`).join(", ");
    const body = `${fields.map((_, j) => `const c${j} = columns[${j}];`).join(" ")} const n = c0.length; const out = new Array(n); for (let i = 0; i < n; i++) out[i] = { ${literal} }; return out;`;
    let make: ObjectsOf;
    try {
      make = new Function("columns", body) as ObjectsOf;
    } catch {
      this.generating = false; // node --disallow-code-generation-from-strings
      return undefined;
    }
    this.shapes.set(id, make);
    return make;
  }
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  if (value === null || typeof value !== "object") return false;
  const proto = Object.getPrototypeOf(value);
  return proto === Object.prototype || proto === null;
}
