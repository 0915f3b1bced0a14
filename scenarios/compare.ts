// Comparing the records a stream holds with the ones a scenario expects. Records are equal when their
// JSON is equal with object keys in any order. Each check returns undefined when it holds, or one line
// saying what differs (a few examples, shortened; a pair of records that differ names the first field
// where they do, which shortening may have cut off).

const MAX_SHOWN = 3;
const MAX_RECORD_CHARS = 120;

/** JSON with sorted object keys: equal values give equal strings. */
export function canonical(value: unknown): string {
  return JSON.stringify(sortKeys(value)) ?? "undefined";
}

function sortKeys(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(sortKeys);
  if (typeof v === "object" && v !== null) {
    const out: Record<string, unknown> = {};
    for (const k of Object.keys(v).sort()) out[k] = sortKeys((v as Record<string, unknown>)[k]);
    return out;
  }
  return v;
}

function show(s: string): string {
  return s.length > MAX_RECORD_CHARS ? `${s.slice(0, MAX_RECORD_CHARS - 3)}...` : s;
}

/**
 * Where two unequal values first differ, when both are objects or arrays: ` (at items[7]: got "b",
 * expected "c")`; "" for scalars (the values shown say it all).
 */
export function firstDifference(actual: unknown, expected: unknown): string {
  const at = diffPath(actual, expected, "");
  return at === undefined || at.path === "" ? "" : ` (at ${at.path}: got ${at.got}, expected ${at.want})`;
}

function diffPath(a: unknown, e: unknown, path: string): { path: string; got: string; want: string } | undefined {
  const bothArrays = Array.isArray(a) && Array.isArray(e);
  const bothObjects = isObject(a) && isObject(e);
  if (!bothArrays && !bothObjects) {
    return canonical(a) === canonical(e) ? undefined : { path, got: show(canonical(a)), want: show(canonical(e)) };
  }
  const ao = a as Record<string, unknown>;
  const eo = e as Record<string, unknown>;
  const keys = bothArrays
    ? Array.from({ length: Math.max((a as unknown[]).length, (e as unknown[]).length) }, (_, i) => String(i))
    : [...new Set([...Object.keys(eo), ...Object.keys(ao)])].sort();
  for (const k of keys) {
    const sub = bothArrays ? `${path}[${k}]` : path ? `${path}.${k}` : k;
    if (!(k in ao)) return { path: sub, got: "nothing", want: show(canonical(eo[k])) };
    if (!(k in eo)) return { path: sub, got: show(canonical(ao[k])), want: "nothing" };
    const d = diffPath(ao[k], eo[k], sub);
    if (d) return d;
  }
  return undefined;
}

/** A canonical() string back as its value ("undefined" stays a string: it is no record to look into). */
function parsed(key: string): unknown {
  try { return JSON.parse(key); } catch { return key; }
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === "object" && v !== null && !Array.isArray(v);

function list(items: Map<string, number>): string {
  const parts: string[] = [];
  let total = 0;
  for (const [k, n] of items) {
    total += n;
    if (parts.length < MAX_SHOWN) parts.push(n > 1 ? `${show(k)} ×${n}` : show(k));
  }
  const more = items.size > MAX_SHOWN ? `, ... (${items.size - MAX_SHOWN} more distinct)` : "";
  return `${total}: ${parts.join(", ")}${more}`;
}

function counts(values: readonly unknown[]): Map<string, number> {
  const m = new Map<string, number>();
  for (const v of values) { const k = canonical(v); m.set(k, (m.get(k) ?? 0) + 1); }
  return m;
}

/** What `expected` has that `actual` lacks, as a multiset. */
function missing(expected: Map<string, number>, actual: Map<string, number>): Map<string, number> {
  const out = new Map<string, number>();
  for (const [k, n] of expected) { const d = n - (actual.get(k) ?? 0); if (d > 0) out.set(k, d); }
  return out;
}

/** The same records, in any order. */
export function compareMultiset(actual: readonly unknown[], expected: readonly unknown[]): string | undefined {
  const a = counts(actual);
  const e = counts(expected);
  const lacking = missing(e, a);
  const extra = missing(a, e);
  if (lacking.size === 0 && extra.size === 0) return undefined;
  const parts = [`got ${actual.length} records, expected ${expected.length}`];
  if (lacking.size) parts.push(`missing ${list(lacking)}`);
  if (extra.size) parts.push(`unexpected ${list(extra)}`);
  // One record in place of another: where they differ.
  const pair = lacking.size === 1 && extra.size === 1 ? firstDifference(parsed([...extra.keys()][0]!), parsed([...lacking.keys()][0]!)) : "";
  return parts.join("; ") + pair;
}

/** Every expected record is among the actual ones (as a multiset); others may be there too. */
export function compareContains(actual: readonly unknown[], expected: readonly unknown[]): string | undefined {
  const lacking = missing(counts(expected), counts(actual));
  return lacking.size === 0 ? undefined : `got ${actual.length} records; missing ${list(lacking)}`;
}

/** The same records in the same order. */
export function compareOrdered(actual: readonly unknown[], expected: readonly unknown[]): string | undefined {
  const n = Math.min(actual.length, expected.length);
  for (let i = 0; i < n; i++) {
    const a = canonical(actual[i]);
    const e = canonical(expected[i]);
    if (a !== e) return `record ${i} differs: got ${show(a)}, expected ${show(e)}${firstDifference(actual[i], expected[i])}`;
  }
  if (actual.length !== expected.length) {
    const [longer, what] = actual.length > expected.length ? [actual, "unexpected"] : [expected, "missing"];
    return `got ${actual.length} records, expected ${expected.length}; first ${what} (record ${n}): ${show(canonical(longer[n]))}`;
  }
  return undefined;
}

/** `a.b.c` inside a record. */
export function getPath(value: unknown, path: string): unknown {
  let v = value;
  for (const p of path.split(".")) {
    if (typeof v !== "object" || v === null) return undefined;
    v = (v as Record<string, unknown>)[p];
  }
  return v;
}

/**
 * The last record of each key (stream order) equals the expected record with that key, and there are no
 * other keys. Expected records must each have the key; one per key.
 */
export function compareLastPerKey(actual: readonly unknown[], expected: readonly unknown[], keyPath: string): string | undefined {
  const want = new Map<string, unknown>();
  for (const [i, e] of expected.entries()) {
    const k = getPath(e, keyPath);
    if (k === undefined) return `expected record ${i} has no "${keyPath}": ${show(canonical(e))}`;
    const key = canonical(k);
    if (want.has(key)) return `expected records list key ${key} twice (lastPerKey wants one record per key)`;
    want.set(key, e);
  }
  const last = new Map<string, unknown>();
  let keyless = 0;
  for (const a of actual) {
    const k = getPath(a, keyPath);
    if (k === undefined) { keyless++; continue; }
    last.set(canonical(k), a);
  }
  const wrong: string[] = [];
  const absent: string[] = [];
  const extra: string[] = [];
  for (const [k, e] of want) {
    const a = last.get(k);
    if (a === undefined) absent.push(k);
    else if (canonical(a) !== canonical(e)) wrong.push(`${k}: got ${show(canonical(a))}, expected ${show(canonical(e))}${firstDifference(a, e)}`);
  }
  for (const k of last.keys()) if (!want.has(k)) extra.push(k);
  if (!wrong.length && !absent.length && !extra.length && !keyless) return undefined;
  const parts = [`last record per ${keyPath} (${last.size} keys, expected ${want.size})`];
  if (wrong.length) parts.push(`differs for ${wrong.length} key(s): ${wrong.slice(0, MAX_SHOWN).join("; ")}`);
  if (absent.length) parts.push(`missing key(s) ${absent.slice(0, MAX_SHOWN * 2).join(", ")}${absent.length > MAX_SHOWN * 2 ? ", ..." : ""}`);
  if (extra.length) parts.push(`unexpected key(s) ${extra.slice(0, MAX_SHOWN * 2).join(", ")}${extra.length > MAX_SHOWN * 2 ? ", ..." : ""}`);
  if (keyless) parts.push(`${keyless} record(s) without "${keyPath}"`);
  return parts.join("; ");
}
