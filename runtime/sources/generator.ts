// Sources.generator({ count?, ratePerSec?, make }): `make(i)` for i = 0, 1, 2, ... split across
// subtasks (subtask k makes i ≡ k mod p; restored at another parallelism, its share of what was left:
// index-splits.ts); bounded with `count`, unbounded without; `ratePerSec` paces the whole source (each
// subtask its share).

import type { SourceDef } from "../contracts/connectors.ts";
import { ErrorCode, WeirError } from "../core/errors.ts";
import { assignedSplits, IndexCursor, type LegacyState } from "./index-splits.ts";
import * as t from "io-ts";
import { decodeOptions } from "../core/validation.ts";
import { asGiven } from "../core/preview.ts";

// Values are checked below with messages of their own; this refuses unknown keys.
const Options = t.intersection([t.type({ make: t.unknown }), t.partial({ count: t.unknown, ratePerSec: t.unknown })]);

export interface GeneratorOptions<T> {
  readonly count?: number;
  readonly ratePerSec?: number;
  readonly make: (index: number) => T;
}

const BATCH = 1000;

/** A checkpoint from before splits: `{ next }`, subtask k's next i (stride: the parallelism then). */
const legacy: LegacyState = (s, _k, p) => {
  const next = (s as { next?: unknown } | null)?.next;
  return typeof next === "number" ? [next, p] : undefined;
};

export function generatorSource<T>(options: GeneratorOptions<T>): SourceDef<T> {
  if (typeof options?.make !== "function") throw new WeirError(ErrorCode.InvalidOption, "Sources.generator: `make` must be a function (index) => record");
  decodeOptions(Options, options, "Sources.generator", "Sources.generator options");
  // A safe integer: past 2^53 the indexes no longer count up one by one (the source would never reach its end).
  if (options.count !== undefined && !(Number.isSafeInteger(options.count) && options.count >= 0)) {
    throw new WeirError(ErrorCode.InvalidOption, `Sources.generator: count must be a non-negative integer up to ${Number.MAX_SAFE_INTEGER}, got ${asGiven(options.count)}`);
  }
  if (options.ratePerSec !== undefined && !(typeof options.ratePerSec === "number" && Number.isFinite(options.ratePerSec) && options.ratePerSec > 0)) {
    throw new WeirError(ErrorCode.InvalidOption, `Sources.generator: ratePerSec must be a finite positive number (records per second), got ${asGiven(options.ratePerSec)}`);
  }
  return {
    kind: "generator",
    bounded: options.count !== undefined,
    settings: options,
    async createReader(ctx) {
      const end = options.count ?? Number.POSITIVE_INFINITY;
      const cursor = new IndexCursor(assignedSplits(ctx, "generator", end, legacy), end);
      let made = 0;
      const started = performance.now();
      const rate = options.ratePerSec !== undefined ? options.ratePerSec / ctx.parallelism : undefined;
      return {
        async pollNext(maxRecords) {
          if (cursor.done) return null;
          let budget = maxRecords === undefined ? BATCH : Math.max(1, Math.min(BATCH, maxRecords));
          if (rate !== undefined) {
            const due = Math.floor(((performance.now() - started) / 1000) * rate) - made;
            if (due <= 0) {
              await new Promise((r) => setTimeout(r, Math.min(50, Math.max(1, 1000 / rate))));
              return { values: [] };
            }
            budget = Math.min(budget, due);
          }
          const values: T[] = [];
          made += cursor.take(budget, (i) => { values.push(options.make(i)); });
          return { values };
        },
        snapshotState: () => cursor.state(),
        async close() {},
      };
    },
  };
}
