// The operator behind `keyBy(...).window(assigner)`: a keyed process operator running the window logic.
// The builder (WindowedStream in runtime/api/datastream.ts) only adds it to the graph.

import type { OutputTag } from "../../contracts/functions.ts";
import type { OperatorSpec } from "../../contracts/operators.ts";
import { KeyedProcessOperator } from "../../keyed/operator.ts";
import type { WindowAssigner } from "./assigners.ts";
import { windowFunction } from "./window-function.ts";
import { sessionFunction } from "./session-function.ts";
import type { WindowCounters, WindowLogic } from "./window-contents.ts";

export function windowOperatorSpec<K, T, O>(
  assigner: WindowAssigner,
  logic: WindowLogic<T, O>,
  lateTag: OutputTag<T> | undefined,
  keySelector: (value: T) => K,
  allowedLatenessMs = 0,
): OperatorSpec {
  const layout = assigner.layout;
  // Stored with every checkpoint, so that a restore under other windows is refused (restore-checks.ts).
  const recorded = layout === undefined ? undefined : { windows: layout };
  return {
    type: `window-${logic.type}`,
    keySelectors: [keySelector],
    chainable: false,
    ...(layout !== undefined ? { stateLayout: layout } : {}),
    create(ctx) {
      // Counters live with the operator instance (one per subtask) and show in `weir status`.
      const counters: WindowCounters = { lateRecords: 0, windowsFired: 0 };
      const setup = { logic, lateTag, counters, allowedLatenessMs };
      const fn = assigner.kind === "session" ? sessionFunction<K, T, O>(assigner, setup) : windowFunction<K, T, O>(assigner, setup);
      const operator = new KeyedProcessOperator<K, T, O>(ctx, fn, [keySelector], undefined, () => ({ ...counters }));
      return recorded === undefined ? operator : Object.assign(operator, { snapshotState: () => recorded });
    },
  };
}
