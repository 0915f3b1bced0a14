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
  return path || "(value)";
}

/** "asyncState.bufferSize: expected PositiveInt, got -1" (the first error; a second one is summarized). */
export function describeErrors(errors: t.Errors): string {
  const e = errors[0];
  if (!e) return "invalid";
  const expected = e.message ?? e.context[e.context.length - 1]?.type.name ?? "a valid value";
  // preview, not JSON.stringify: the value may be user data of any size or depth.
  const got = e.value === undefined ? "nothing" : preview(e.value, 80);
  const more = errors.length > 1 ? ` (and ${errors.length - 1} more)` : "";
  return `${pathOf(e)}: expected ${expected}, got ${got}${more}`;
}

export function decodeOrThrow<A, O>(codec: t.Type<A, O, unknown>, value: unknown, what: string, code: ErrorCode = ErrorCode.InvalidOption): A {
  const result = codec.decode(value);
  if (isLeft(result)) throw new WeirError(code, `${what}: ${describeErrors(result.left)}`);
  return result.right;
}

// Small codecs with readable names.
export interface PositiveIntBrand { readonly PositiveInt: unique symbol }
export const PositiveInt = t.brand(t.number, (n): n is t.Branded<number, PositiveIntBrand> => Number.isInteger(n) && n > 0, "PositiveInt");
export interface NonNegativeIntBrand { readonly NonNegativeInt: unique symbol }
export const NonNegativeInt = t.brand(t.number, (n): n is t.Branded<number, NonNegativeIntBrand> => Number.isInteger(n) && n >= 0, "NonNegativeInt");
