// Watermark epochs (FLIP-425): the records between two watermarks form an epoch. A watermark closes the
// current epoch; once every record of that epoch (and of all earlier ones) has finished, the epoch's
// action runs (fire the timers the watermark makes due), and when the records that action started have
// finished too, the watermark is emitted. In "strict" mode no record of a later epoch starts before
// that; in "out-of-order" mode they may.

export interface Epoch {
  readonly id: number;
  /** Watermark that closes this epoch; undefined while open. */
  watermark?: number;
  /** Records (and timers) of this epoch still running. */
  inFlight: number;
  /** closed: waiting for its records; firing: its action started; */
  phase: "open" | "closed" | "firing";
  /** Records (and timers) that ever entered, and how many had when the action's last round began (see step). */
  entered: number;
  roundStart: number;
  /** Runs once all records finished; may start more records in this epoch (timers). */
  onDrained?: () => void;
  /** Runs once the epoch's action's records finished too. */
  onComplete?: () => void;
}

export class EpochManager {
  private readonly epochs: Epoch[] = [];
  private nextId = 0;

  constructor() {
    this.epochs.push(this.newEpoch());
  }

  get open(): Epoch { return this.epochs[this.epochs.length - 1]!; }
  /** Epochs closed by a watermark that has not been emitted yet. */
  get pending(): number { return this.epochs.length - 1; }

  /** The oldest epoch closed (and not yet emitted) by a watermark at or past `timestamp`: where a timer of that time fires. */
  closedFor(timestamp: number): Epoch | undefined {
    for (let i = 0; i < this.epochs.length - 1; i++) if (this.epochs[i]!.watermark! >= timestamp) return this.epochs[i];
    return undefined;
  }

  /** A record (or timer) joins the open epoch, or `epoch` when given (timers of a firing epoch). */
  enter(epoch: Epoch = this.open): Epoch {
    epoch.inFlight++;
    epoch.entered++;
    return epoch;
  }

  leave(epoch: Epoch): void {
    // Only an epoch running out of records can move anything, and only once some epoch is closed.
    if (--epoch.inFlight === 0 && this.epochs.length > 1) this.progress();
  }

  /** Closes the open epoch with `watermark`; `fire` starts its timers, `emit` forwards the watermark. */
  close(watermark: number, fire: (epoch: Epoch) => void, emit: () => void): void {
    const e = this.open;
    e.watermark = watermark;
    e.phase = "closed";
    e.onDrained = () => fire(e);
    e.onComplete = emit;
    this.epochs.push(this.newEpoch());
    this.progress();
  }

  private progressing = false;
  private again = false;

  /** Advances the oldest epochs whose records are done, in order (re-entrant calls are folded in). */
  private progress(): void {
    if (this.progressing) {
      this.again = true;
      return;
    }
    this.progressing = true;
    try {
      do {
        this.again = false;
        this.step();
      } while (this.again);
    } finally {
      this.progressing = false;
    }
  }

  private step(): void {
    for (;;) {
      const oldest = this.epochs[0]!;
      if (oldest.phase === "open" || oldest.inFlight > 0) return;
      // Fire the due timers; once a round that fired some has finished, look again: a timer's onTimer may
      // have registered another that this watermark makes due (as sync execution polls until none is).
      // A round that fired any entered more than the action's own hold (the controller's fireTimers).
      if (oldest.phase === "closed" || oldest.entered - oldest.roundStart > 1) {
        oldest.phase = "firing";
        oldest.roundStart = oldest.entered;
        oldest.onDrained?.();
        if (oldest.inFlight > 0) return; // its timers run; we come back when they finish
        continue;
      }
      this.epochs.shift();
      oldest.onComplete?.();
    }
  }

  private newEpoch(): Epoch {
    return { id: this.nextId++, inFlight: 0, phase: "open", entered: 0, roundStart: 0 };
  }
}
