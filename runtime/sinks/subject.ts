// The subject of a record for the NATS and JetStream sinks: a fixed string or `(value) => string`. A
// subject a function returns is checked per record (cheaply): one that cannot be published to (a wildcard,
// an empty token from the record's data, longer than a protocol line holds) sends that record to the dead
// letters with the reason, and the job goes on; a fixed one is checked once, as an option.

import { ErrorCode, WeirError, messageOf } from "../core/errors.ts";
import { preview } from "../core/preview.ts";

export type SubjectOption<T> = string | ((value: T) => string);

const SUBJECT = /^[^\s.]+(\.[^\s.]+)*$/;
/** The server's max_control_line is 4096 bytes for the whole `PUB <subject> <reply> <size>` line: a longer one closes the connection. */
export const MAX_SUBJECT_BYTES = 3072;

export function subjectProblem(subject: unknown): string | undefined {
  if (typeof subject !== "string") return `expected a string, got ${typeof subject}`;
  if (subject.length > MAX_SUBJECT_BYTES / 3 && Buffer.byteLength(subject) > MAX_SUBJECT_BYTES) return `a subject of ${Buffer.byteLength(subject)} bytes is longer than weir publishes (${MAX_SUBJECT_BYTES}; the server closes a connection whose protocol line passes 4096)`;
  if (!SUBJECT.test(subject)) return "subjects are dot-separated non-empty tokens without spaces";
  if ((subject.includes("*") || subject.includes(">")) && subject.split(".").some((t) => t === "*" || t === ">")) return "wildcards cannot be published to";
  return undefined;
}

/**
 * `reject(value, reason)` dead-letters a record whose subject cannot be published to; the resolver then
 * returns undefined and the sink skips the record.
 */
export function subjectResolver<T>(what: string, option: SubjectOption<T>, reject: (value: T, reason: string) => void): (value: T) => string | undefined {
  if (typeof option === "function") {
    return (value) => {
      let s: string;
      try {
        s = option(value);
      } catch (e) {
        throw new WeirError(ErrorCode.UserFunction, `${what}: the subject function threw: ${messageOf(e)}`, { cause: e });
      }
      const problem = subjectProblem(s);
      if (problem === undefined) return s;
      reject(value, `${what}: the subject function returned ${typeof s === "string" ? preview(s, 200) : typeof s}: ${problem}`);
      return undefined;
    };
  }
  checkSubjectOption(what, option);
  return () => option;
}

/** A fixed subject, checked when the sink is defined: one line naming the sink. */
export function checkSubjectOption<T>(what: string, option: SubjectOption<T>): void {
  if (typeof option !== "string") return;
  const problem = subjectProblem(option);
  if (problem !== undefined) throw new WeirError(ErrorCode.InvalidOption, `${what}: subject ${preview(option, 200)}: ${problem}`);
}
