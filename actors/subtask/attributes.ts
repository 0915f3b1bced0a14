// RecordAttributes (backlog or not, FLIP-327) reaching a subtask's chain: the lifecycle machine hears of
// each change (backlog ⇄ streaming, or backlog → sorting while a keyed operator sorts its backlog).

import type { MaybePromise, Output } from "../../runtime/contracts/operators.ts";
import type { RecordAttributes } from "../../runtime/transport/frames.ts";
import type { SubtaskLifecycle } from "./lifecycle.ts";

export function emitAttributes(lifecycle: SubtaskLifecycle, out: Output, attrs: RecordAttributes): MaybePromise {
  lifecycle.send({ type: "BACKLOG", isBacklog: attrs.isBacklog });
  const p = out.emitAttributes(attrs);
  // Backlog → sorting: the keyed operator is processing its sorted backlog until `p` settles.
  if (!lifecycle.isSorting) return p;
  const drained = () => { lifecycle.send({ type: "SORT_DRAINED" }); };
  return p ? p.then(drained) : drained();
}
