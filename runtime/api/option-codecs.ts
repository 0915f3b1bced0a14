// The options objects of the stream API (operators, fromSource, executeAndCollect, environment hooks),
// checked with the strict decoder: an unknown key is a one-line error naming it, never ignored.

import * as t from "io-ts";
import { decodeOptions, FunctionOption, NonNegativeInt, PositiveInt } from "../core/validation.ts";
import { WatermarkStrategy } from "../contracts/watermarks.ts";
import type { NodeOptions } from "../graph/stream-graph.ts";

/** An operator's name shows in status, metrics and errors: an empty one would name nothing. */
const OperatorName = t.refinement(t.string, (s) => s.trim().length > 0, "NonEmptyString");
export const NodeOptionsCodec = t.exact(t.partial({ name: OperatorName, uid: t.string, parallelism: PositiveInt }), "OperatorOptions");

const WatermarkStrategyCodec = new t.Type<WatermarkStrategy<unknown>, WatermarkStrategy<unknown>, unknown>(
  "WatermarkStrategy",
  (u): u is WatermarkStrategy<unknown> => u instanceof WatermarkStrategy,
  (u, c) => (u instanceof WatermarkStrategy ? t.success(u as WatermarkStrategy<unknown>) : t.failure(u, c)),
  (s) => s,
);

export const SourceNodeOptionsCodec = t.exact(t.partial({ ...NodeOptionsCodec.type.props, watermarks: WatermarkStrategyCodec }), "SourceOptions");

export const CollectOptionsCodec = t.exact(t.partial({ limit: NonNegativeInt }), "CollectOptions");

export const EnvironmentHooksCodec = t.exact(t.partial({
  clock: t.unknown,
  log: FunctionOption,
  chaining: t.boolean,
  wrapStateBackend: FunctionOption,
  onSubtasksRetired: FunctionOption,
  natsFlags: t.exact(t.partial({ nats: t.string, context: t.string, creds: t.string })),
}), "EnvironmentHooks");

/** `options` of an operator method, checked; `method` names it in the error ("map()", "window().reduce()"). */
export function nodeOptions<O extends NodeOptions>(options: O | undefined, method: string): O | undefined {
  if (options === undefined) return undefined;
  decodeOptions(NodeOptionsCodec, options, `${method} options`);
  return options;
}

/** JobClient.stop's options: a misspelt `savepoint` would stop without one. */
export const StopOptionsCodec = t.exact(t.partial({ savepoint: t.boolean }), "StopOptions");
