// assignTimestampsAndWatermarks: stamps each record and emits periodic watermarks (every
// autoWatermarkIntervalMs, on the subtask's mailbox). Upstream watermarks are replaced, except the final
// MAX watermark of a bounded input, which passes so windows and timers fire at the end.

import { preview } from "../core/preview.ts";
import type { WatermarkStrategy } from "../contracts/watermarks.ts";
import { UserFunctionError } from "../core/errors.ts";
import { MAX_WATERMARK, MIN_WATERMARK } from "../transport/frames.ts";
import type { MaybePromise, OperatorSpec } from "../contracts/operators.ts";

export function timestampsSpec<T>(strategy: WatermarkStrategy<T>): OperatorSpec {
  return {
    type: "timestamps-watermarks",
    create(ctx) {
      const out = ctx.output;
      const interval = ctx.job.autoWatermarkIntervalMs;
      let maxTs = MIN_WATERMARK;
      let emitted = MIN_WATERMARK;
      let lastRecordAt = ctx.clock.now();
      let idle = false;
      let timer: unknown;
      let closed = false;

      const periodic = (): MaybePromise => {
        if (closed) return;
        if (maxTs !== MIN_WATERMARK) {
          const wm = maxTs - strategy.outOfOrdernessMs - 1;
          if (wm > emitted && !idle) {
            emitted = wm;
            const p = out.emitWatermark(wm);
            if (p) return p.then(schedule);
          }
        }
        if (strategy.idlenessMs !== undefined && !idle && ctx.clock.now() - lastRecordAt >= strategy.idlenessMs) {
          idle = true;
          const p = out.emitIdle(true);
          if (p) return p.then(schedule);
        }
        schedule();
      };
      const schedule = (): void => {
        if (!closed) timer = ctx.clock.setTimeout(() => ctx.enqueue(periodic), interval);
      };

      return {
        open: schedule,
        processElement(value, ts) {
          let t: number;
          try {
            t = strategy.timestampAssigner ? strategy.timestampAssigner(value as T, ts) : (ts ?? ctx.clock.now());
          } catch (e) {
            throw new UserFunctionError(ctx.runtime.operatorName, ctx.runtime.subtaskIndex, undefined, e);
          }
          if (typeof t !== "number" || Number.isNaN(t)) {
            throw new UserFunctionError(ctx.runtime.operatorName, ctx.runtime.subtaskIndex, undefined, new Error(`timestamp assigner returned ${typeof t === "number" ? "NaN" : `${preview(t)} (${t === null ? "null" : typeof t})`}, expected a number`));
          }
          if (t > maxTs) maxTs = t;
          lastRecordAt = ctx.clock.now();
          if (idle) {
            idle = false;
            const p = out.emitIdle(false);
            if (p) return p.then(() => out.collect(value, t));
          }
          const p = out.collect(value, t);
          if (!strategy.perRecord) return p;
          const wm = maxTs - strategy.outOfOrdernessMs - 1;
          if (wm <= emitted) return p;
          emitted = wm;
          return p ? p.then(() => out.emitWatermark(wm)) : out.emitWatermark(wm);
        },
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
