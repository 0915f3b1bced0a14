// WatermarkStrategy as in Flink: how to read an event's timestamp and how far behind the largest one
// seen the watermark trails; `withIdleness` marks a quiet input idle so it does not hold others back.

export type TimestampAssigner<T> = (event: T, recordTimestamp: number | undefined) => number;

export class WatermarkStrategy<T> {
  private constructor(
    readonly timestampAssigner: TimestampAssigner<T> | undefined,
    readonly outOfOrdernessMs: number,
    readonly idlenessMs: number | undefined,
    readonly perRecord = false,
  ) {}

  /** Watermark = largest timestamp seen − `maxOutOfOrdernessMs` − 1. */
  static boundedOutOfOrderness<T>(maxOutOfOrdernessMs: number, timestamp?: (event: T) => number): WatermarkStrategy<T> {
    // A string ("5") compares as a number and Infinity would hold every watermark back for ever.
    if (!(typeof maxOutOfOrdernessMs === "number" && Number.isFinite(maxOutOfOrdernessMs) && maxOutOfOrdernessMs >= 0)) {
      throw new RangeError(`boundedOutOfOrderness: expected a finite non-negative delay in ms, got ${JSON.stringify(maxOutOfOrdernessMs) ?? String(maxOutOfOrdernessMs)}`);
    }
    if (timestamp !== undefined && typeof timestamp !== "function") throw new TypeError(`boundedOutOfOrderness: the timestamp assigner must be a function, got ${typeof timestamp}`);
    return new WatermarkStrategy<T>(timestamp ? (e) => timestamp(e) : undefined, maxOutOfOrdernessMs, undefined);
  }

  /** Timestamps never go backwards: watermark = largest timestamp − 1. */
  static forMonotonousTimestamps<T>(timestamp?: (event: T) => number): WatermarkStrategy<T> {
    return WatermarkStrategy.boundedOutOfOrderness<T>(0, timestamp);
  }

  withTimestampAssigner(assigner: TimestampAssigner<T>): WatermarkStrategy<T> {
    if (typeof assigner !== "function") throw new TypeError(`withTimestampAssigner: the timestamp assigner must be a function, got ${typeof assigner}`);
    return new WatermarkStrategy<T>(assigner, this.outOfOrdernessMs, this.idlenessMs, this.perRecord);
  }

  /** An input with no records for `idleMs` is idle until its next record. */
  withIdleness(idleMs: number): WatermarkStrategy<T> {
    if (!(typeof idleMs === "number" && Number.isFinite(idleMs) && idleMs > 0)) {
      throw new RangeError(`withIdleness: expected a finite positive duration in ms, got ${JSON.stringify(idleMs) ?? String(idleMs)}`);
    }
    return new WatermarkStrategy<T>(this.timestampAssigner, this.outOfOrdernessMs, idleMs, this.perRecord);
  }

  /**
   * Emit the watermark right after every record that advances it, instead of every
   * autoWatermarkIntervalMs (Flink's punctuated generator): deterministic, at the cost of more control
   * frames. Tests and replays that must agree run to run use it.
   */
  withWatermarkPerRecord(): WatermarkStrategy<T> {
    return new WatermarkStrategy<T>(this.timestampAssigner, this.outOfOrdernessMs, this.idlenessMs, true);
  }
}
