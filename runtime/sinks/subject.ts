// The subject of a record for the NATS and JetStream sinks: a fixed string or `(value) => string`. A
// subject a function returns is checked per record (cheaply): a wildcard or an empty token there is a
// bug in the job, reported with the subject and the sink rather than as an opaque client error.

import { ErrorCode, WeirError, messageOf } from "../core/errors.ts";

export type SubjectOption<T> = string | ((value: T) => string);

const SUBJECT = /^[^\s.]+(\.[^\s.]+)*$/;

export function subjectProblem(subject: unknown): string | undefined {
  if (typeof subject !== "string") return `expected a string, got ${typeof subject}`;
  if (!SUBJECT.test(subject)) return "subjects are dot-separated non-empty tokens without spaces";
  if ((subject.includes("*") || subject.includes(">")) && subject.split(".").some((t) => t === "*" || t === ">")) return "wildcards cannot be published to";
  return undefined;
}

export function subjectResolver<T>(what: string, option: SubjectOption<T>): (value: T) => string {
  if (typeof option === "function") {
    return (value) => {
      let s: string;
      try {
        s = option(value);
      } catch (e) {
        throw new WeirError(ErrorCode.UserFunction, `${what}: the subject function threw: ${messageOf(e)}`, { cause: e });
      }
      const problem = subjectProblem(s);
      if (problem !== undefined) throw new WeirError(ErrorCode.Sink, `${what}: the subject function returned ${JSON.stringify(s)}: ${problem}`);
      return s;
    };
  }
  const problem = subjectProblem(option);
  if (problem !== undefined) throw new WeirError(ErrorCode.InvalidOption, `${what}: subject ${JSON.stringify(option)}: ${problem}`);
  return () => option;
}
