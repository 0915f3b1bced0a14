// How many records the AsyncExecutionController admits in flight before the subtask waits, below the
// in-flight limit. Records answered at once (heap state, cached entries) finish within the turn of the
// event loop that started them, and thousands of them started before any finishes only keep their
// promises and contexts alive through scavenges (bench/prof-keyed.ts, heap count, 2026-12-03: 1.35-1.8 µs
// CPU per record with 6000 admitted, 0.91-0.94 with 8, 0.88-0.90 with 32, where a wait for capacity every
// 8 records cost more than the few more live records). So admission starts at MIN_ADMITTED; a turn of the
// event loop that ends with the subtask still waiting (its records wait for a remote read or the user's
// own I/O) doubles it, up to the limit; a wait that ended within the turn with few records left halves it.
//
// Remote reads: more records in flight only overlap more round trips while the store (and this process)
// has room; past that, batches queue and their round trips grow with their size. Cold KV reads on
// loopback, where the job and the server share the CPU, ran 31-38k records/s with 200 admitted against
// 27-32k with 6000 (less of the in-flight records' garbage to collect, docs/known-gaps.md). So admission stops
// growing once state batches take QUEUEING_FACTOR times the quickest round trip seen (and at least
// QUEUEING_FLOOR_MS), and halves past twice that: TCP Vegas's rule, on batches instead of packets; while
// batches are out it grows once per batch answered. A user function's own I/O sends no batches and grows
// admission as before.

/** Records admitted in flight before the subtask waits, at least. */
export const MIN_ADMITTED = 32;

/** Batch round trips shorter than this never count as queueing: more in flight costs little latency there. */
export const QUEUEING_FLOOR_MS = 4;

/** A batch round trip this many times the quickest seen: batches queue rather than overlap. */
export const QUEUEING_FACTOR = 2;

export interface AdmissionHost {
  /** Whether the subtask still waits for capacity. */
  readonly waiting: () => boolean;
  readonly inFlight: () => number;
  /** Admission grew: waiters may go on. */
  readonly grew: () => void;
}

export class Admission {
  private admitted: number;
  private probing = false;
  /** The quickest state batch round trip seen (ms): the store's latency without queueing. */
  private quickestRtt = Number.POSITIVE_INFINITY;
  /** Recent batch round trips, smoothed (ms); negative until a batch was answered. */
  private recentRtt = -1;
  /** State batches sent and not answered yet; whether one was answered since admission last grew. */
  private batchesOut = 0;
  private answeredSinceGrowth = false;

  constructor(private limit: number, private readonly host: AdmissionHost) {
    this.admitted = Math.min(limit, MIN_ADMITTED);
  }

  /** Records in flight at which the subtask waits now. */
  get current(): number { return this.admitted; }

  /** A new in-flight limit (debloating): a smaller one caps admission at once, a larger one lets it grow. */
  setLimit(limit: number): void {
    this.limit = limit;
    this.admitted = Math.min(this.admitted, limit);
  }

  batchSent(): void { this.batchesOut++; }

  /** A batch of state requests was answered `ms` after it was sent (undefined: it failed). */
  batchAnswered(ms: number | undefined): void {
    this.batchesOut--;
    if (ms === undefined) return;
    this.answeredSinceGrowth = true;
    if (ms < this.quickestRtt) this.quickestRtt = ms;
    this.recentRtt = this.recentRtt < 0 ? ms : this.recentRtt * 0.75 + ms * 0.25;
  }

  /** The subtask waits for capacity: after this turn of the event loop, grow if it still waits, else maybe shrink. */
  probe(): void {
    if (this.probing) return;
    this.probing = true;
    setImmediate(() => {
      this.probing = false;
      if (this.host.waiting()) {
        if (this.queueing(2 * QUEUEING_FACTOR)) this.shrink();
        else if (this.admitted < this.limit && !this.queueing(QUEUEING_FACTOR) && this.heardBack()) {
          this.admitted = Math.min(this.limit, this.admitted * 2);
          this.answeredSinceGrowth = false;
          this.host.grew();
        }
      } else if (this.host.inFlight() <= this.admitted / 4) {
        this.shrink();
      }
    });
  }

  /**
   * While state batches are out, one growth per batch answered (TCP's slow start: once per round trip):
   * growing every turn of the event loop before any answered took admission to thousands unchecked.
   */
  private heardBack(): boolean {
    return this.batchesOut === 0 || this.answeredSinceGrowth;
  }

  private queueing(factor: number): boolean {
    return this.recentRtt >= QUEUEING_FLOOR_MS && this.recentRtt > factor * this.quickestRtt;
  }

  private shrink(): void {
    this.admitted = Math.max(Math.min(this.limit, MIN_ADMITTED), this.admitted >> 1);
  }
}
