// A short, JSON-like text of any value for messages and dead letters, built without JSON.stringify: that
// recurses once per nesting level and throws a RangeError past a few thousand levels, and it would build
// the whole text of a megabyte value to show its first 80 characters. This walk stops as soon as the text
// is `max` characters long, and shows at most MAX_DEPTH levels: its cost and its depth are bounded.

/** Deeper levels show as "…": the walk recurses, and `max` may be large (a dead letter's data). */
const MAX_DEPTH = 100;

/** At most `max` characters (then "…"); cycles show as "[Circular]", bigints as numbers. */
export function preview(value: unknown, max = 80): string {
  const out: string[] = [];
  let length = 0;
  const seen = new Set<object>();
  const push = (s: string): boolean => {
    out.push(s);
    length += s.length;
    return length < max;
  };
  const walk = (v: unknown, depth = 0): boolean => {
    switch (typeof v) {
      case "string": return push(JSON.stringify(v.length > max ? v.slice(0, max) : v));
      case "number": return push(Number.isFinite(v) ? String(v) : "null");
      case "boolean": return push(String(v));
      case "bigint": return push(String(v));
      case "undefined": return push("undefined");
      case "function": return push("[Function]");
      case "symbol": return push(String(v));
    }
    if (v === null) return push("null");
    const o = v as object;
    if (seen.has(o)) return push("[Circular]");
    if (ArrayBuffer.isView(o)) return push(`<${o.constructor.name} ${o.byteLength} bytes>`);
    if (depth >= MAX_DEPTH) return push("…");
    seen.add(o);
    try {
      if (Array.isArray(o)) {
        if (!push("[")) return false;
        for (let i = 0; i < o.length; i++) {
          if (i > 0 && !push(",")) return false;
          if (!walk(o[i], depth + 1)) return false;
        }
        return push("]");
      }
      if (!push("{")) return false;
      let first = true;
      for (const k in o) {
        if (!Object.prototype.hasOwnProperty.call(o, k)) continue;
        if (!first && !push(",")) return false;
        first = false;
        if (!push(`${JSON.stringify(k.length > max ? k.slice(0, max) : k)}:`)) return false;
        if (!walk((o as Record<string, unknown>)[k], depth + 1)) return false;
      }
      return push("}");
    } finally {
      seen.delete(o);
    }
  };
  const complete = walk(value);
  const text = out.join("");
  return complete && text.length <= max ? text : `${text.slice(0, max)}…`;
}

/**
 * A wrong argument as the user wrote it, for "got ..." in messages: a string quoted (so "10" does not read
 * as the number 10), a number as it is (NaN and Infinity too, which preview shows as JSON's null).
 */
export function asGiven(v: unknown): string {
  return typeof v === "number" ? String(v) : typeof v === "string" ? JSON.stringify(v) : preview(v);
}
