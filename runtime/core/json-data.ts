// JSON data: what state holds (KV stores JSON) and what records are on the wire. Plain objects, arrays,
// strings, finite numbers, booleans and null; nothing else survives a JSON round trip unchanged.

import { ignoreRejection } from "./refused-promise.ts";

function isPlain(value: object): boolean {
  const proto = Object.getPrototypeOf(value) as unknown;
  return proto === Object.prototype || proto === null;
}

/** Deeper than this is copied by reference (JSON itself gives up near 4,000 levels). */
const MAX_DEPTH = 1000;

/**
 * A copy of `value` as far as it is plain objects and arrays; anything else (a Date, a class instance)
 * is kept as is. For outputs that must not change when the object they came from does.
 */
export function copyPlain<T>(value: T, depth = 0): T {
  if (typeof value !== "object" || value === null || depth > MAX_DEPTH) return value;
  if (Array.isArray(value)) {
    const out = new Array<unknown>(value.length);
    for (let i = 0; i < value.length; i++) out[i] = copyPlain(value[i], depth + 1);
    return out as T;
  }
  if (!isPlain(value)) return value;
  const out: Record<string, unknown> = {};
  for (const k in value) out[k] = copyPlain((value as Record<string, unknown>)[k], depth + 1);
  return out as T;
}

/** Where in `value` something is not JSON data, as a path and what it is; undefined when it all is. */
export function nonJsonAt(value: unknown, path = "", depth = 0): string | undefined {
  switch (typeof value) {
    case "string": case "boolean": return undefined;
    case "number": return Number.isFinite(value) ? undefined : `${path || "the value"} is ${value}`;
    case "object": break;
    default: return `${path || "the value"} is ${typeof value === "undefined" ? "undefined" : `a ${typeof value}`}`;
  }
  if (value === null || depth > MAX_DEPTH) return undefined;
  if (Array.isArray(value)) {
    for (let i = 0; i < value.length; i++) {
      const at = value[i] === undefined ? undefined : nonJsonAt(value[i], `${path}[${i}]`, depth + 1);
      if (at) return at;
    }
    return undefined;
  }
  // A Promise (an async key selector or reducer) is refused here: its rejection is no unhandled one then.
  if (!isPlain(value)) {
    ignoreRejection(value);
    return `${path || "the value"} is a ${(value as object).constructor?.name ?? "non-plain object"}`;
  }
  for (const k in value) {
    const v = (value as Record<string, unknown>)[k];
    // An undefined field is left out by JSON, as it is absent: not a change of meaning.
    const at = v === undefined ? undefined : nonJsonAt(v, `${path}.${k}`, depth + 1);
    if (at) return at;
  }
  return undefined;
}

/**
 * Checks the first accumulators an operator keeps: state is stored as JSON (a Set or a Map would come back
 * from KV as {} once out of the cache, while the heap keeps it: results would depend on the backend).
 */
export function jsonAccumulators(what: string): (acc: unknown) => void {
  let left = 16;
  return (acc) => {
    if (left === 0) return;
    left--;
    const at = nonJsonAt(acc);
    if (at !== undefined) throw new TypeError(`the ${what} accumulator must be JSON data (plain objects, arrays, strings, finite numbers, booleans, null), as keyed state is stored as JSON: ${at}`);
  };
}

/**
 * Why a key selector's result cannot be a key, or undefined when it can. Keys are compared, hashed and
 * stored as JSON, so a key JSON cannot hold would silently be another one: every Date, Map or Set is {},
 * NaN and Infinity are null, a function is nothing. Flink refuses a null key; undefined is weir's.
 */
export function keyProblem(key: unknown): string | undefined {
  switch (typeof key) {
    case "string": case "boolean": return undefined;
    case "undefined": return "the key selector returned undefined";
    case "number": if (Number.isFinite(key)) return undefined;
  }
  const at = nonJsonAt(key);
  if (at === undefined) return undefined;
  return `the key selector returned a key JSON cannot hold (${at.replace(/^the value/, "the key")}): keys are compared as JSON, where such keys would all be one; return a string, a finite number or plain data (a Date's getTime(), say)`;
}

/**
 * Where `value` holds something JSON writes as {} or leaves out (a Map, a Set, a function), as a path;
 * undefined when nothing. Such a value would come back changed (a Map as {}) from KV, or from the
 * next subtask, while the heap and a chained operator kept it: results would depend on the backend, on
 * eviction and on chaining. Called only when the JSON has a "{}", where a Map, a Set or an object of
 * functions shows.
 */
export function lostInJson(value: unknown, path = "", depth = 0): string | undefined {
  if (typeof value === "function" || typeof value === "symbol") return `${path || "the value"} is a ${typeof value}`;
  if (value === null || typeof value !== "object" || depth > 64) return undefined;
  if (value instanceof Map || value instanceof Set || value instanceof WeakMap || value instanceof WeakSet) {
    return `${path || "the value"} is a ${value.constructor.name} (JSON writes {})`;
  }
  if (Array.isArray(value)) {
    for (let i = 0; i < value.length; i++) { const at = lostInJson(value[i], `${path}[${i}]`, depth + 1); if (at) return at; }
    return undefined;
  }
  for (const k of Object.keys(value)) { const at = lostInJson((value as Record<string, unknown>)[k], `${path}.${k}`, depth + 1); if (at) return at; }
  return undefined;
}
