// Arguments of the stream builders, checked when the graph is built: a wrong one is a one-line error
// naming the call, never a TypeError from inside a running subtask.

import { ErrorCode, WeirError } from "../core/errors.ts";
import { WatermarkStrategy } from "../contracts/watermarks.ts";

function described(value: unknown): string {
  if (value === null) return "null";
  if (Array.isArray(value)) return "an array";
  if (typeof value !== "object") return typeof value;
  const keys = Object.keys(value);
  return keys.length === 0 ? "an object with no keys" : `an object with keys ${keys.join(", ")}`;
}

/** `value` must be a function (map, filter, a reduce...). */
export function requireFunction(value: unknown, what: string): void {
  if (typeof value !== "function") throw new WeirError(ErrorCode.InvalidGraph, `${what}: expected a function, got ${described(value)}`);
}

/** `value` must be an object with each of `methods` (a process function, a source, a sink...). */
export function requireMethods(value: unknown, methods: readonly string[], what: string, expected: string): void {
  const missing = typeof value === "object" && value !== null
    ? methods.filter((m) => typeof (value as Record<string, unknown>)[m] !== "function")
    : methods;
  if (missing.length > 0) throw new WeirError(ErrorCode.InvalidGraph, `${what}: expected ${expected} (with ${missing.join(", ")}), got ${described(value)}`);
}

/** Streams combined into one operator (union, connect) must come from one environment: one job graph. */
export function requireSameJob(other: unknown, isStream: boolean, sameJob: boolean, what: string): void {
  if (!isStream) throw new WeirError(ErrorCode.InvalidGraph, `${what}: expected a DataStream, got ${described(other)}`);
  if (!sameJob) throw new WeirError(ErrorCode.InvalidGraph, `${what}: the stream comes from another StreamEnvironment (the streams of one job come from one environment)`);
}

/** `value` must be an OutputTag (outputTag("name")): a string would send the records nowhere. */
export function requireTag(value: unknown, what: string): void {
  const id = typeof value === "object" && value !== null ? (value as { id?: unknown }).id : undefined;
  if (typeof id !== "string" || id.length === 0) throw new WeirError(ErrorCode.InvalidGraph, `${what}: expected an output tag (outputTag("name")), got ${typeof value === "string" ? `the string ${JSON.stringify(value)}` : described(value)}`);
}

/** `value` must be a WatermarkStrategy (WatermarkStrategy.forMonotonousTimestamps(...), ...). */
export function requireWatermarkStrategy(value: unknown, what: string): void {
  if (!(value instanceof WatermarkStrategy)) throw new WeirError(ErrorCode.InvalidGraph, `${what}: expected a WatermarkStrategy (WatermarkStrategy.boundedOutOfOrderness(...) or .forMonotonousTimestamps(...)), got ${described(value)}`);
}

/** A builder that takes no options (keyBy, connect, window...): an argument past `takes` is an error, never ignored. */
export function requireNoMore(extra: readonly unknown[], what: string, takes: string): void {
  if (extra.length > 0) throw new WeirError(ErrorCode.InvalidOption, `${what}: takes ${takes} and nothing more, got also ${extra.map(described).join(", ")} (options go to the operator that follows)`);
}
