// The source text of the functions a job hands an operator (its map function, its process function's
// methods, a window's aggregate...), so that workers of one job can tell they run the same code
// (runtime/cluster/job-identity.ts): two workers whose job files differ only in a function body would
// otherwise each run their share of the keys by their own code.

/** How deep `functionsText` looks into objects (a window's logic holds the user's aggregate function object). */
const MAX_DEPTH = 2;

/** The text of every function in `parts`: functions themselves, and the methods of objects (their classes' too), by name. */
export function functionsText(...parts: readonly unknown[]): string {
  const out: string[] = [];
  for (const p of parts) collect(p, out, 0);
  return out.join("\n");
}

function collect(part: unknown, out: string[], depth: number): void {
  if (typeof part === "function") {
    out.push(Function.prototype.toString.call(part));
    return;
  }
  if (part === null || typeof part !== "object" || Array.isArray(part) || depth >= MAX_DEPTH) return;
  // Values only, never getters (no user code runs here); a name seen on the object hides its class's.
  const values = new Map<string, unknown>();
  for (let o: object | null = part; o !== null && o !== Object.prototype; o = Object.getPrototypeOf(o) as object | null) {
    for (const name of Object.getOwnPropertyNames(o)) {
      if (name === "constructor" || values.has(name)) continue;
      const d = Object.getOwnPropertyDescriptor(o, name);
      values.set(name, d !== undefined && "value" in d ? d.value : undefined);
    }
  }
  for (const name of [...values.keys()].sort()) {
    const v = values.get(name);
    if (typeof v === "function") out.push(`${name}: ${Function.prototype.toString.call(v)}`);
    else if (v !== null && typeof v === "object") collect(v, out, depth + 1);
  }
}
