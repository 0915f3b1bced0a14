// Restoring a source whose position only means something per subtask (array, generator): the checkpoint
// holds every old subtask's state; at the same parallelism, subtask i takes state i.

import type { SourceContext } from "../contracts/connectors.ts";
import { ErrorCode, WeirError } from "../core/errors.ts";

export function restoredPosition<S>(ctx: SourceContext, kind: string, isState: (s: unknown) => s is S): S | undefined {
  const raw = ctx.restoredState;
  if (raw === undefined) return undefined;
  const states = Array.isArray(raw) ? raw : [raw];
  if (states.length !== ctx.parallelism) {
    throw new WeirError(ErrorCode.Source, `Sources.${kind} (${ctx.operatorName}) was checkpointed with ${states.length} subtasks and cannot restore at ${ctx.parallelism}: set its parallelism to ${states.length}`);
  }
  const mine = states[ctx.subtaskIndex];
  if (!isState(mine)) throw new WeirError(ErrorCode.Source, `Sources.${kind} (${ctx.operatorName}): restored state ${JSON.stringify(mine)?.slice(0, 60)} is not this source's`);
  return mine;
}
