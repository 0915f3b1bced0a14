// State values as JSON text, faithfully: JSON has no Infinity, -Infinity or NaN (`JSON.stringify` writes
// null, and a restored state would read null where a number was: a codec then refuses it, or arithmetic
// takes it for 0). Such a number is stored as {"$weir:number": "-Infinity"} and read back as the number;
// only a JSON holding "null" (on the way out) or the marker (on the way in) takes the slower path.

const MARK = "$weir:number";

const marked = (_key: string, v: unknown): unknown => (typeof v === "number" && !Number.isFinite(v) ? { [MARK]: String(v) } : v);

const unmarked = (_key: string, v: unknown): unknown => {
  if (v === null || typeof v !== "object" || Array.isArray(v)) return v;
  const m = (v as Record<string, unknown>)[MARK];
  return typeof m === "string" && Object.keys(v).length === 1 ? Number(m) : v;
};

/** The JSON of a state value (undefined: `value` has none, as JSON.stringify); non-finite numbers marked. */
export function toStateJson(value: unknown): string | undefined {
  const json = JSON.stringify(value);
  return json !== undefined && json.includes("null") && hasNonFinite(value, 0) ? JSON.stringify(value, marked) : json;
}

/** A state value from its JSON (toStateJson's). */
export function fromStateJson(json: string): unknown {
  return json.includes(MARK) ? JSON.parse(json, unmarked) : JSON.parse(json);
}

function hasNonFinite(value: unknown, depth: number): boolean {
  if (typeof value === "number") return !Number.isFinite(value);
  if (value === null || typeof value !== "object" || depth > 64) return false;
  for (const v of Array.isArray(value) ? value : Object.values(value)) if (hasNonFinite(v, depth + 1)) return true;
  return false;
}
