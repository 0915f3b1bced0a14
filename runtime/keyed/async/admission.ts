// How many records the AsyncExecutionController admits in flight before the subtask waits, below the
// in-flight limit. Records answered at once (heap state, cached entries) finish within the turn of the
// event loop that started them, and thousands of them started before any finishes only keep their
// promises and contexts alive through scavenges (bench/prof-keyed.ts, heap count, 2026-12-03: 1.35-1.8 µs
// CPU per record with 6000 admitted, 0.91-0.94 with 8, 0.88-0.90 with 32, where a wait for capacity every
// 8 records cost more than the few more live records). So admission starts at MIN_ADMITTED; a turn of the
// event loop that ends with the subtask still waiting (its records wait for a remote read or the user's
// own I/O) doubles it, up to the limit; a wait that ended within the turn with few records left halves it.

/** Records admitted in flight before the subtask waits, at least. */
export const MIN_ADMITTED = 32;

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

  /** The subtask waits for capacity: after this turn of the event loop, grow if it still waits, else maybe shrink. */
  probe(): void {
    if (this.probing) return;
    this.probing = true;
    setImmediate(() => {
      this.probing = false;
      if (this.host.waiting()) {
        if (this.admitted >= this.limit) return;
        this.admitted = Math.min(this.limit, this.admitted * 2);
        this.host.grew();
      } else if (this.host.inFlight() <= this.admitted / 4) {
        this.admitted = Math.max(Math.min(this.limit, MIN_ADMITTED), this.admitted >> 1);
      }
    });
  }
}
