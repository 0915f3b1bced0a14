// Buffer debloating (Flink's FLIP-183): a consumer measures how many records it processes per second of
// work (time spent waiting for input does not count; time blocked on its own output does) and sizes
// what its producers may send ahead to about `targetMs` of that work. It keeps the number of frames in
// flight (credits) and shrinks the records per frame, so a fast consumer keeps full frames and a slow one
// holds only a second or so of records ahead of a checkpoint barrier. The same figure bounds how much a
// source reads per poll and how many records a keyed operator keeps in flight.
//
// Pure: the subtask feeds it cumulative counters and the time; it decides.

export interface DebloatOptions {
  /** The drain time to aim for (Flink's buffer-debloat.target, 1 s). */
  readonly targetMs: number;
  /** The frame size: never more records per frame than this. */
  readonly maxRecordsPerFrame: number;
  /** Frames the producers may send ahead in all (channels × credit window); 0 for a source. */
  readonly framesInFlight: number;
  /** How often the throughput is sampled. */
  readonly periodMs?: number;
  /**
   * Time constant of the moving average of the throughput: a sample covering `dt` ms weighs
   * 1 - exp(-dt / smoothingMs), so a sample of long work (a subtask seldom sampled, being blocked) counts fully.
   */
  readonly smoothingMs?: number;
  /** A new frame size is announced only when it differs from the last by more than this fraction. */
  readonly threshold?: number;
  /** Records per frame before the first measurement: small, so a slow start holds little. */
  readonly initialRecordsPerFrame?: number;
}

const FIRST_PERIOD_MS = 10;
const DEFAULTS = { periodMs: 50, smoothingMs: 500, threshold: 0.25, initialRecordsPerFrame: 4 } as const;

export class BufferDebloater {
  /** Records per second of work, smoothed; undefined until the first sample with work in it. */
  throughput: number | undefined;
  /** What producers should put in a frame now. */
  recordsPerFrame: number;
  private readonly periodMs: number;
  private readonly smoothingMs: number;
  private readonly threshold: number;
  private nextSampleAt: number | undefined;
  private lastAt = 0;
  private lastRecords = 0;
  private lastIdleMs = 0;

  constructor(private readonly o: DebloatOptions) {
    if (!(o.targetMs > 0)) throw new RangeError(`buffer debloating needs a positive target, got ${o.targetMs}`);
    this.periodMs = o.periodMs ?? DEFAULTS.periodMs;
    this.smoothingMs = o.smoothingMs ?? DEFAULTS.smoothingMs;
    this.threshold = o.threshold ?? DEFAULTS.threshold;
    this.recordsPerFrame = clamp(o.initialRecordsPerFrame ?? DEFAULTS.initialRecordsPerFrame, 1, o.maxRecordsPerFrame);
  }

  /** Whether a sample is due at `nowMs` (one comparison: cheap enough per frame). */
  due(nowMs: number): boolean {
    return this.nextSampleAt === undefined || nowMs >= this.nextSampleAt;
  }

  /**
   * Takes a sample from cumulative counters: records processed and milliseconds spent idle (waiting for
   * input) since the start. Returns true when `recordsPerFrame` changed enough to announce.
   */
  sample(nowMs: number, records: number, idleMs: number): boolean {
    if (this.nextSampleAt === undefined) {
      this.start(nowMs, records, idleMs);
      // The first measurement comes soon: a fast consumer should not run long on the small first frames.
      this.nextSampleAt = nowMs + FIRST_PERIOD_MS;
      return false;
    }
    const busyMs = nowMs - this.lastAt - (idleMs - this.lastIdleMs);
    const n = records - this.lastRecords;
    this.start(nowMs, records, idleMs);
    // A period without work says nothing about the rate of work (a starved consumer is not a slow one).
    // The next sample comes soon, as the first does: work that arrives after a long wait (a sink while a
    // backlog is sorted upstream) should not run a whole period on frames sized before it.
    if (n === 0 || busyMs <= 0) {
      this.nextSampleAt = nowMs + FIRST_PERIOD_MS;
      return false;
    }
    const rate = (n * 1000) / busyMs;
    const weight = 1 - Math.exp(-busyMs / this.smoothingMs);
    this.throughput = this.throughput === undefined ? rate : this.throughput + weight * (rate - this.throughput);
    if (this.o.framesInFlight <= 0) return false;
    const wanted = clamp(Math.ceil(this.recordsBudget()! / this.o.framesInFlight), 1, this.o.maxRecordsPerFrame);
    const current = this.recordsPerFrame;
    if (wanted === current) return false;
    // Always move to the limits (full frames for a fast consumer); elsewhere only past the threshold.
    if (wanted !== this.o.maxRecordsPerFrame && Math.abs(wanted - current) <= this.threshold * current) return false;
    this.recordsPerFrame = wanted;
    return true;
  }

  /** Records that take about `targetMs` to process at the measured rate (at least 1); undefined before a measurement. */
  recordsBudget(): number | undefined {
    if (this.throughput === undefined) return undefined;
    return Math.max(1, Math.ceil((this.throughput * this.o.targetMs) / 1000));
  }

  private start(nowMs: number, records: number, idleMs: number): void {
    this.lastAt = nowMs;
    this.lastRecords = records;
    this.lastIdleMs = idleMs;
    this.nextSampleAt = nowMs + this.periodMs;
  }
}

function clamp(n: number, lo: number, hi: number): number {
  return n < lo ? lo : n > hi ? hi : n;
}
