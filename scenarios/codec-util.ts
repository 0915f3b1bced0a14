// Small io-ts building blocks for scenario files: objects that reject unknown fields (a typo must not be
// ignored), "exactly one of these keys" objects (steps, waits, expectations) that name the key they
// found in the error path, and checks with a readable message. Errors read as runtime/core/validation.ts
// formats them: `steps[2].publish.subject: expected string, got 3`.

import * as t from "io-ts";
import { isLeft } from "fp-ts/lib/Either.js";

type Props = t.Props;

const isRecord = (u: unknown): u is Record<string, unknown> => typeof u === "object" && u !== null && !Array.isArray(u);

/** Like `t.intersection([t.type(required), t.partial(optional)])`, but an unknown field is an error. */
export function strictObject<R extends Props, O extends Props>(
  name: string,
  required: R,
  optional: O,
): t.Type<t.TypeOf<t.TypeC<R>> & Partial<t.TypeOf<t.PartialC<O>>>, unknown, unknown> {
  const inner = t.intersection([t.type(required), t.partial(optional)]);
  const known = [...Object.keys(required), ...Object.keys(optional)];
  type A = t.TypeOf<t.TypeC<R>> & Partial<t.TypeOf<t.PartialC<O>>>;
  return new t.Type<A, unknown, unknown>(
    name,
    (u): u is A => inner.is(u) && Object.keys(u as object).every((k) => known.includes(k)),
    (u, c) => {
      if (!isRecord(u)) return t.failure(u, c, `an object (${name})`);
      for (const k of Object.keys(u)) {
        if (!known.includes(k)) return t.failure(u[k], t.appendContext(c, k, t.unknown, u[k]), `no field "${k}" (known: ${known.join(", ")})`);
      }
      // An entry for the intersection itself, so its members' keys ("0", "1") stay out of error paths.
      return inner.validate(u, t.appendContext(c, "", inner, u)) as t.Validation<A>;
    },
    t.identity,
  );
}

/**
 * An object holding exactly one of `variants`' keys (plus any of `extra`), e.g. a step `{ publish: {...},
 * timeoutMs: 100 }`. Decodes to `{ kind, body, ...extra }`; errors name the key: `steps[1].wait.output`.
 */
export function oneOf<V extends Record<string, t.Mixed>, E extends Props>(
  name: string,
  variants: V,
  extra: E,
): t.Type<{ [K in keyof V]: { kind: K; body: t.TypeOf<V[K]> } & Partial<t.TypeOf<t.PartialC<E>>> }[keyof V], unknown, unknown> {
  type A = { [K in keyof V]: { kind: K; body: t.TypeOf<V[K]> } & Partial<t.TypeOf<t.PartialC<E>>> }[keyof V];
  const kinds = Object.keys(variants);
  const extraCodec = t.partial(extra);
  const described = `one of ${kinds.join(", ")}`;
  return new t.Type<A, unknown, unknown>(
    name,
    (u): u is A => isRecord(u) && typeof u.kind === "string" && kinds.includes(u.kind),
    (u, c) => {
      // A bare word (`kill: process`) is the short form of a step whose body is that word.
      if (!isRecord(u)) return t.failure(u, c, `an object with ${described}`);
      const present = Object.keys(u).filter((k) => kinds.includes(k));
      const unknownKeys = Object.keys(u).filter((k) => !kinds.includes(k) && !(k in extra));
      if (present.length !== 1) {
        if (unknownKeys.length > 0) {
          const k = unknownKeys[0]!;
          return t.failure(u[k], t.appendContext(c, k, t.unknown, u[k]), `${described} (no such key "${k}")`);
        }
        return t.failure(u, c, present.length === 0 ? described : `only one of ${present.join(", ")}`);
      }
      if (unknownKeys.length > 0) {
        const k = unknownKeys[0]!;
        return t.failure(u[k], t.appendContext(c, k, t.unknown, u[k]), `no field "${k}" beside ${present[0]} (known: ${Object.keys(extra).join(", ") || "none"})`);
      }
      const kind = present[0]!;
      const codec = variants[kind]!;
      const body = codec.validate(u[kind], t.appendContext(c, kind, codec, u[kind]));
      if (isLeft(body)) return body;
      const rest: Record<string, unknown> = {};
      for (const k of Object.keys(extra)) if (k in u) rest[k] = u[k];
      const ex = extraCodec.validate(rest, c);
      if (isLeft(ex)) return ex;
      return t.success({ kind, body: body.right, ...ex.right } as A);
    },
    t.identity,
  );
}

/** A problem of one field of a checked object: reported at its path, with its value. */
export interface FieldProblem { readonly at: string; readonly problem: string; readonly value: unknown }

/**
 * `codec`, then `check` on the decoded value: a string from `check` is the error ("expected <string>"),
 * a FieldProblem the error of that field.
 */
export function checked<C extends t.Mixed>(codec: C, check: (a: t.TypeOf<C>) => string | FieldProblem | undefined): t.Type<t.TypeOf<C>, unknown, unknown> {
  return new t.Type<t.TypeOf<C>, unknown, unknown>(
    codec.name,
    codec.is,
    (u, c) => {
      const r = codec.validate(u, c);
      if (isLeft(r)) return r;
      const problem = check(r.right);
      if (problem === undefined) return r;
      if (typeof problem === "string") return t.failure(u, c, problem);
      // Named at the field: `steps[0].publish.subject`, not the whole step.
      return t.failure(problem.value, [...c, { key: problem.at, type: t.unknown, actual: problem.value }], problem.problem);
    },
    t.identity,
  );
}

/** A regular expression given as a string: invalid syntax is a decode error. */
export const RegexString = new t.Type<string, unknown, unknown>(
  "regular expression",
  (u): u is string => typeof u === "string",
  (u, c) => {
    if (typeof u !== "string") return t.failure(u, c, "a regular expression (string)");
    try { new RegExp(u); } catch (e) { return t.failure(u, c, `a valid regular expression (${(e as Error).message})`); }
    return t.success(u);
  },
  t.identity,
);

export const NonNegativeNumber = t.refinement(t.number, (n) => n >= 0 && Number.isFinite(n), "non-negative number");
export const PositiveInteger = t.refinement(t.number, (n) => Number.isInteger(n) && n > 0, "positive integer");
export const NonNegativeInteger = t.refinement(t.number, (n) => Number.isInteger(n) && n >= 0, "non-negative integer");
export const NonEmptyString = t.refinement(t.string, (s) => s.length > 0, "non-empty string");
/** A JetStream stream name: the client refuses these characters, and only once the run reaches the step or expectation. */
export const StreamName = t.refinement(NonEmptyString, (s) => !/[.*>/\\\s]/.test(s), "a stream name (stream names cannot contain . * > / \\ or whitespace)");
