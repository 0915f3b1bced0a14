// assignTimestampsAndWatermarks: stamps each record and emits periodic watermarks (every
// autoWatermarkIntervalMs, on the subtask's mailbox). Upstream watermarks are replaced, except the final
// MAX watermark of a bounded input, which passes so windows and timers fire at the end. As fromSource's
// watermarks, a watermark per split of the source (split-watermarks.ts).

import { preview } from "../core/preview.ts";
import type { WatermarkStrategy } from "../contracts/watermarks.ts";
import { UserFunctionError } from "../core/errors.ts";
import { ignoreRejection } from "../core/refused-promise.ts";
import { MAX_WATERMARK, MIN_WATERMARK } from "../transport/frames.ts";
import type { MaybePromise, OperatorSpec } from "../contracts/operators.ts";
import type { SourceSplits } from "../contracts/connectors.ts";
import { SplitWatermarks } from "./split-watermarks.ts";

/** One split that never ends: the subtask's whole input (an operator not fed by a source's splits). */
const WHOLE_INPUT: SourceSplits = { count: 1, ended: () => false };

/**
 * `perSplit` (fromSource's watermarks): right after a source that reads several splits, a watermark per
 * split, the lowest emitted (split-watermarks.ts); otherwise one over all input.
 */
export function timestampsSpec<T>(strategy: WatermarkStrategy<T>, perSplit = false): OperatorSpec {
  return {
    type: "timestamps-watermarks",
    create(ctx) {
      const out = ctx.output;
      const interval = ctx.job.autoWatermarkIntervalMs;
      let splits = new SplitWatermarks(WHOLE_INPUT, strategy.outOfOrdernessMs, strategy.idlenessMs, ctx.clock.now());
      let emitted = MIN_WATERMARK;
      let idle = false;
      let timer: unknown;
      let closed = false;

      const periodic = (): MaybePromise => {
        if (closed) return;
        // On the mailbox, so between two batches of a source: see noteEnded.
        splits.noteEnded();
        const now = splits.current(ctx.clock.now());
        if (now.watermark > emitted && !idle) {
          emitted = now.watermark;
          const p = out.emitWatermark(now.watermark);
          if (p) return p.then(schedule);
        }
        if (now.idle && !idle) {
          idle = true;
          const p = out.emitIdle(true);
          if (p) return p.then(schedule);
        }
        schedule();
      };
      const goIdleNow = (): MaybePromise => {
        if (closed || idle || !splits.current(ctx.clock.now()).idle) return;
        idle = true;
        return out.emitIdle(true);
      };
      const schedule = (): void => {
        if (!closed) timer = ctx.clock.setTimeout(() => ctx.enqueue(periodic, true), interval);
      };

      const timestampOf = (value: unknown, ts: number | undefined): number => {
        let t: number;
        try {
          t = strategy.timestampAssigner ? strategy.timestampAssigner(value as T, ts) : (ts ?? ctx.clock.now());
        } catch (e) {
          throw new UserFunctionError(ctx.runtime.operatorName, ctx.runtime.subtaskIndex, undefined, e);
        }
        if (typeof t !== "number" || Number.isNaN(t)) {
          ignoreRejection(t);
          throw new UserFunctionError(ctx.runtime.operatorName, ctx.runtime.subtaskIndex, undefined, new Error(`timestamp assigner returned ${typeof t === "number" ? "NaN" : (t as unknown) instanceof Promise ? "a Promise (it must return the timestamp itself: not an async function)" : `${preview(t)} (${t === null ? "null" : typeof t})`}, expected a number`));
        }
        return t;
      };

      const element = (value: unknown, ts: number | undefined, split: number): MaybePromise => {
        const t = timestampOf(value, ts);
        splits.record(split, t, ctx.clock.now());
        if (idle) {
          idle = false;
          const p = out.emitIdle(false);
          if (p) return p.then(() => out.collect(value, t));
        }
        const p = out.collect(value, t);
        if (!strategy.perRecord) return p;
        const wm = splits.current(ctx.clock.now()).watermark;
        if (wm <= emitted) return p;
        emitted = wm;
        return p ? p.then(() => out.emitWatermark(wm)) : out.emitWatermark(wm);
      };

      return {
        open: schedule,
        processElement(value, ts) { return element(value, ts, 0); },
        ...(perSplit ? {
          readSplits(sourceSplits) {
            // Splits replaced (Sources.hybrid's next part, once the part before ended on this subtask):
            // what the ended part reached goes out first, as it would had the splits stayed.
            const reached = splits.highest();
            if (reached > emitted) {
              ctx.enqueue(() => {
                if (closed || reached <= emitted) return;
                emitted = reached;
                return out.emitWatermark(reached);
              }, true);
            }
            splits = new SplitWatermarks(sourceSplits, strategy.outOfOrdernessMs, strategy.idlenessMs, ctx.clock.now());
            // No split (more subtasks than subjects): idle at once, not at the first periodic check, by
            // which time downstream ran the other subtasks' first records (a backlog) at watermark MIN.
            if (sourceSplits.count === 0) ctx.enqueue(goIdleNow, true);
            return element;
          },
        } : {}),
        onWatermark(wm) {
          if (wm >= MAX_WATERMARK && emitted < MAX_WATERMARK) {
            emitted = MAX_WATERMARK;
            return out.emitWatermark(MAX_WATERMARK);
          }
        },
        onIdle() { /* this operator decides idleness for its own output */ },
        close() {
          closed = true;
          if (timer !== undefined) ctx.clock.clearTimeout(timer);
        },
      };
    },
  };
}
