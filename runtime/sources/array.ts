// Sources.array(items): bounded; parallelism 1 by default (order kept); with more subtasks, subtask i
// takes the items at positions i, i+p, i+2p, ...

import type { SourceDef } from "../contracts/connectors.ts";
import { restoredPosition } from "./positional-restore.ts";
import { ErrorCode, WeirError } from "../core/errors.ts";

const BATCH = 1000;

export function arraySource<T>(items: readonly T[], ...rest: unknown[]): SourceDef<T> {
  if (!Array.isArray(items)) throw new TypeError("Sources.array: expected an array of items");
  // It takes no options: a second argument would otherwise be ignored.
  if (rest.length > 0) throw new WeirError(ErrorCode.InvalidOption, "Sources.array(items) takes no options: give fromSource(source, { parallelism, name, uid, watermarks }) instead");
  return {
    kind: "array",
    bounded: true,
    defaultParallelism: 1,
    async createReader(ctx) {
      const mine = ctx.parallelism === 1 ? items : items.filter((_, i) => i % ctx.parallelism === ctx.subtaskIndex);
      let pos = restoredPosition(ctx, "array", (s): s is { position: number } => typeof (s as { position?: unknown })?.position === "number")?.position ?? 0;
      return {
        async pollNext() {
          if (pos >= mine.length) return null;
          const values = mine.slice(pos, pos + BATCH);
          pos += values.length;
          return { values };
        },
        snapshotState: () => ({ position: pos }),
        async close() {},
      };
    },
  };
}
