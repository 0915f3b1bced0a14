// Encoding and decoding of state values with their io-ts codecs: a value that fails its codec becomes a
// StateCodecError naming the state, the key and the path inside the value (PathReporter), never a silent
// coercion.

import * as t from "io-ts";
import { PathReporter } from "io-ts/lib/PathReporter.js";
import { describeKey, StateCodecError } from "../errors.ts";
import type { KeyScope } from "../contracts.ts";

/** io-ts's identity, read once: a namespace property read on every decode showed in profiles. */
const identity = t.identity;

/** What a handle needs to name a failure: the state's name and the key it is bound to. */
export interface CodecSite {
  readonly state: string;
  readonly scope: KeyScope;
}

/** Validates `value` against `codec` (its `is` guard) and returns its encoded form, as the backend stores it. */
export function encodeWith<A>(codec: t.Type<A, unknown, unknown>, value: A, site: CodecSite, what = "value"): unknown {
  if (!codec.is(value)) {
    const decoded = codec.decode(value);
    // `is` failed but decode succeeded: the value is in encoded form (e.g. a string for a Date codec).
    const paths = decoded._tag === "Left"
      ? PathReporter.report(decoded)
      : [`Invalid value ${describeKey(value)} supplied to : ${codec.name}`];
    throw new StateCodecError(site.state, site.scope.key, "write", what === "value" ? paths : paths.map((p) => `${what}: ${p}`));
  }
  return codec.encode(value);
}

/** Decodes a stored (encoded) value; `stored` is never undefined here (absent is handled by the caller). */
export function decodeWith<A>(codec: t.Type<A, unknown, unknown>, stored: unknown, site: CodecSite, what = "value"): A {
  // A codec that encodes as the identity (io-ts marks it so) decodes a valid value to itself: `is` says
  // so without the context and Either objects `decode` builds on every read.
  if (codec.encode === identity && codec.is(stored)) return stored;
  const decoded = codec.decode(stored);
  if (decoded._tag === "Left") {
    const paths = PathReporter.report(decoded);
    throw new StateCodecError(site.state, site.scope.key, "read", what === "value" ? paths : paths.map((p) => `${what}: ${p}`));
  }
  return decoded.right;
}
