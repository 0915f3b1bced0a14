// JSON has no Infinity, -Infinity or NaN: `JSON.stringify` writes them as null, and a restored state would
// read null where a number was (a codec then refuses it, or arithmetic takes it for 0). A value holding
// one is refused when it is stored, naming where in the value it is.

/** Where in `value` a non-finite number is (`""`: the value itself; `.a[2]`: inside), or undefined. */
export function nonFinitePath(value: unknown, path = "", depth = 0): string | undefined {
  if (typeof value === "number") return Number.isFinite(value) ? undefined : path;
  if (value === null || typeof value !== "object" || depth > 64) return undefined;
  if (Array.isArray(value)) {
    for (let i = 0; i < value.length; i++) {
      const p = nonFinitePath(value[i], `${path}[${i}]`, depth + 1);
      if (p !== undefined) return p;
    }
    return undefined;
  }
  for (const [k, v] of Object.entries(value)) {
    const p = nonFinitePath(v, `${path}.${k}`, depth + 1);
    if (p !== undefined) return p;
  }
  return undefined;
}

/**
 * Why the JSON of `value` (already stringified) would not read back as `value`: a non-finite number
 * (written as null), or undefined when it reads back. Only a JSON holding "null" is looked into.
 */
export function notStorable(value: unknown, json: string): string | undefined {
  if (!json.includes("null")) return undefined;
  const path = nonFinitePath(value);
  return path === undefined ? undefined : `${path === "" ? "it is" : `at ${path} it holds`} a number JSON cannot store (Infinity, -Infinity or NaN would read back as null)`;
}
