// Decoding untrusted input (options, scenario files, records) with io-ts, with one readable line per error.

import * as t from "io-ts";
import { isLeft } from "fp-ts/lib/Either.js";
import { ErrorCode, WeirError } from "./errors.ts";
import { preview } from "./preview.ts";

/** `asyncState.bufferSize`, `items[2].name`: where a value failed, skipping union/intersection members. */
export function errorPath(errors: t.Errors): string {
  const e = errors[0];
  return e ? pathOf(e) : "";
}

function pathOf(e: t.ValidationError): string {
  let path = "";
  for (let i = 1; i < e.context.length; i++) {
    const parent = e.context[i - 1]!.type;
    const key = e.context[i]!.key;
    if (key === "" || parent instanceof t.UnionType || parent instanceof t.IntersectionType) continue;
    const indexed = /^\d+$/.test(key) && (parent instanceof t.ArrayType || parent instanceof t.ReadonlyArrayType || parent instanceof t.TupleType);
    path += indexed ? `[${key}]` : path ? `.${key}` : key;
  }
  return path || WHOLE_VALUE;
}

const WHOLE_VALUE = "(value)";

/**
 * "asyncState.bufferSize: expected PositiveInt, got -1" (the first error; errors at other paths are
 * summarized). A value that matched no member of a union names the union: `parallelism: expected
 * (PositiveInt | "auto"), got 0`, not its first member alone.
 */
export function describeErrors(errors: t.Errors): string {
  const e = errors[0];
  if (!e) return "invalid";
  // preview, not JSON.stringify: the value may be user data of any size or depth.
  const got = e.value === undefined ? "nothing" : preview(e.value, 80);
  const path = pathOf(e);
  const others = new Set(errors.map(pathOf)).size - 1;
  const more = others > 0 ? ` (and ${others} more)` : "";
  // The whole value failed (an options object left out): no path to name.
  return `${path === WHOLE_VALUE ? "" : `${path}: `}expected ${expectedOf(e)}, got ${got}${more}`;
}

function expectedOf(e: t.ValidationError): string {
  if (e.message) return e.message;
  let i = e.context.length - 1;
  while (i > 0 && e.context[i - 1]!.type instanceof t.UnionType) i--;
  return e.context[i]?.type.name ?? "a valid value";
}

export function decodeOrThrow<A, O>(codec: t.Type<A, O, unknown>, value: unknown, what: string, code: ErrorCode = ErrorCode.InvalidOption): A {
  const result = codec.decode(value);
  if (isLeft(result)) throw new WeirError(code, `${what}: ${describeErrors(result.left)}`);
  return result.right;
}

/** The one test of a positive integer (options, sizes, CLI flags); PositiveInt is its codec. */
export function isPositiveInt(n: unknown): n is number {
  return typeof n === "number" && Number.isInteger(n) && n > 0;
}

// Small codecs with readable names.
export interface PositiveIntBrand { readonly PositiveInt: unique symbol }
export const PositiveInt = t.brand(t.number, (n): n is t.Branded<number, PositiveIntBrand> => isPositiveInt(n), "PositiveInt");
export interface NonNegativeIntBrand { readonly NonNegativeInt: unique symbol }
export const NonNegativeInt = t.brand(t.number, (n): n is t.Branded<number, NonNegativeIntBrand> => Number.isInteger(n) && n >= 0, "NonNegativeInt");

/** An option whose value is a user function (`subject: (v) => string`, `inspect`). */
export const FunctionOption = new t.Type<(...args: any[]) => unknown, (...args: any[]) => unknown, unknown>(
  "function",
  (u): u is (...args: any[]) => unknown => typeof u === "function",
  (u, c) => (typeof u === "function" ? t.success(u as (...args: any[]) => unknown) : t.failure(u, c)),
  (f) => f,
);

/**
 * The keys an object codec allows, or undefined when the codec does not describe an object with fixed
 * keys (a union, a record, a scalar: walkKeys picks a union's member itself). Looks through exact, readonly, refinement and intersection codecs.
 */
export function allowedProps(codec: t.Mixed): Record<string, t.Mixed> | undefined {
  if (codec instanceof t.InterfaceType || codec instanceof t.PartialType) return codec.props as Record<string, t.Mixed>;
  if (codec instanceof t.ExactType || codec instanceof t.ReadonlyType || codec instanceof t.RefinementType) return allowedProps(codec.type as t.Mixed);
  if (codec instanceof t.IntersectionType) {
    const props: Record<string, t.Mixed> = {};
    for (const member of codec.types as t.Mixed[]) {
      const p = allowedProps(member);
      if (!p) return undefined;
      Object.assign(props, p);
    }
    return props;
  }
  return undefined;
}

/**
 * The first key of `value` its object codec does not know (t.exact would drop it silently), recursing
 * into nested object options: one line naming the key, where it was, what is allowed, and the closest
 * allowed key when it looks like a typo.
 */
export function unknownKeyError(codec: t.Mixed, value: unknown, what: string): string | undefined {
  return walkKeys(codec, value, what, "");
}

function walkKeys(codec: t.Mixed, value: unknown, what: string, path: string): string | undefined {
  if (typeof value !== "object" || value === null || Array.isArray(value)) return undefined;
  // A union (startAt: { sequence } or { time }): the keys of the first member the value decodes as. When
  // none does, the value's own decode error names the problem.
  if (codec instanceof t.UnionType) {
    const member = (codec.types as t.Mixed[]).find((m) => m.decode(value)._tag === "Right");
    return member === undefined ? undefined : walkKeys(member, value, what, path);
  }
  const props = allowedProps(codec);
  if (!props) return undefined;
  const allowed = Object.keys(props);
  for (const key of Object.keys(value)) {
    const at = path ? `${path}.${key}` : key;
    if (!Object.prototype.hasOwnProperty.call(props, key)) {
      const guess = closest(key, allowed);
      const hint = guess ? ` (did you mean "${path ? `${path}.` : ""}${guess}"?)` : "";
      const where = path ? ` in ${path}` : "";
      return `${what}: unknown option "${at}"${hint}; allowed${where}: ${allowed.join(", ") || "none"}`;
    }
    const nested = walkKeys(props[key]!, (value as Record<string, unknown>)[key], what, at);
    if (nested) return nested;
  }
  return undefined;
}

/** The allowed key nearest to `key` (case-insensitive edit distance), if near enough to be a typo. */
export function closest(key: string, allowed: readonly string[]): string | undefined {
  let best: string | undefined;
  let bestDistance = Infinity;
  for (const candidate of allowed) {
    const d = editDistance(key.toLowerCase(), candidate.toLowerCase());
    if (d < bestDistance) { best = candidate; bestDistance = d; }
  }
  return best !== undefined && bestDistance <= Math.max(1, Math.floor(Math.max(key.length, best.length) / 3)) ? best : undefined;
}

function editDistance(a: string, b: string): number {
  // Optimal string alignment: a swap of two neighbours ("nmae" for "name") counts as one edit.
  const d: number[][] = Array.from({ length: a.length + 1 }, (_, i) => Array.from({ length: b.length + 1 }, (_, j) => (i === 0 ? j : j === 0 ? i : 0)));
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      let v = Math.min(d[i - 1]![j]! + 1, d[i]![j - 1]! + 1, d[i - 1]![j - 1]! + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) v = Math.min(v, d[i - 2]![j - 2]! + 1);
      d[i]![j] = v;
    }
  }
  return d[a.length]![b.length]!;
}

/**
 * Decodes an options object users write: an unknown key is an error (never dropped), then the values
 * are checked; `what` says where (`job options`, `map() options`), `keysWhat` if unknown keys say it
 * otherwise (`Sources.jetstream options`, beside value errors that say `Sources.jetstream: ...`).
 */
export function decodeOptions<A, O>(codec: t.Type<A, O, unknown>, value: unknown, what: string, keysWhat = what): A {
  const unknown = unknownKeyError(codec as unknown as t.Mixed, value, keysWhat);
  if (unknown) throw new WeirError(ErrorCode.InvalidOption, unknown);
  return decodeOrThrow(codec, value, what);
}
