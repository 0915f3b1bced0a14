// The body of a dead letter as dead-letters.ts writes it, read back: `weir dead-letters` lists and
// replays letters from it. A message on the dead-letter subject that is not such a body (published there
// by hand, say) is reported, not thrown: the rest of the stream stays readable.

import * as t from "io-ts";
import { isRight } from "fp-ts/lib/Either.js";
import { PathReporter } from "io-ts/lib/PathReporter.js";

export const DeadLetterBody = t.intersection([
  t.type({
    reason: t.string,
    origin: t.string,
    data: t.string,
    encoding: t.union([t.literal("utf8"), t.literal("base64")]),
    size: t.number,
    at: t.string,
  }),
  t.partial({
    subject: t.string,
    stream: t.string,
    sequence: t.number,
    line: t.number,
    truncated: t.boolean,
  }),
]);
export type DeadLetterBody = t.TypeOf<typeof DeadLetterBody>;

/** The letter's body, or why the message is not one. */
export function parseDeadLetterBody(text: string): { readonly letter: DeadLetterBody } | { readonly invalid: string } {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    return { invalid: `not JSON (${(e as Error).message})` };
  }
  const decoded = DeadLetterBody.decode(json);
  return isRight(decoded) ? { letter: decoded.right } : { invalid: `not a dead letter: ${PathReporter.report(decoded)[0] ?? "invalid"}` };
}

/** The rejected record's bytes as the letter keeps them (cut when the letter is `truncated`). */
export function letterData(letter: DeadLetterBody): Uint8Array {
  return letter.encoding === "base64" ? new Uint8Array(Buffer.from(letter.data, "base64")) : new TextEncoder().encode(letter.data);
}
