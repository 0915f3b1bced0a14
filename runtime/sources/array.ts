// Sources.array(items): bounded; parallelism 1 by default (order kept); with more subtasks, subtask i
// takes the items at positions i, i+p, i+2p, ... (restored at another parallelism, its share of what was
// left: index-splits.ts).

import type { SourceDef } from "../contracts/connectors.ts";
import { assignedSplits, IndexCursor, type LegacyState } from "./index-splits.ts";
import { ErrorCode, WeirError } from "../core/errors.ts";

const BATCH = 1000;

/** A checkpoint from before splits: `{ position }` in subtask k's items (those at k, k + p, ...). */
const legacy: LegacyState = (s, k, p) => {
  const position = (s as { position?: unknown } | null)?.position;
  return typeof position === "number" ? [k + position * p, p] : undefined;
};

export function arraySource<T>(items: readonly T[], ...rest: unknown[]): SourceDef<T> {
  if (!Array.isArray(items)) throw new TypeError("Sources.array: expected an array of items");
  // It takes no options: a second argument would otherwise be ignored.
  if (rest.length > 0) throw new WeirError(ErrorCode.InvalidOption, "Sources.array(items) takes no options: give fromSource(source, { parallelism, name, uid, watermarks }) instead");
  return {
    kind: "array",
    bounded: true,
    settings: { items },
    defaultParallelism: 1,
    async createReader(ctx) {
      const cursor = new IndexCursor(assignedSplits(ctx, "array", items.length, legacy), items.length);
      return {
        async pollNext() {
          if (cursor.done) return null;
          const values: T[] = [];
          cursor.take(BATCH, (i) => { values.push(items[i]!); });
          return { values };
        },
        snapshotState: () => cursor.state(),
        async close() {},
      };
    },
  };
}
