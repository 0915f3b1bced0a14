// The subtasks of one Sources.hybrid agree on when to move to the next part, as Flink's HybridSource
// switches all readers together: a subtask that finished a part waits until every subtask finished it,
// so no subtask reads the live stream while another still reads history (a key's history and live
// records would otherwise reach its keyed operator in any order).
//
// Over core NATS, on a subject of the run's attempt (a restarted attempt hears nothing of the last):
// each subtask announces how many parts it has finished when that changes, every ANNOUNCE_MS while it
// waits (a subtask that subscribed late hears it), and in answer to a waiting subtask it has caught up
// with. Restored subtasks may start in different parts (see hybrid.ts): a count already reached counts.

import type { NatsConnection, Subscription } from "@nats-io/transport-node";

const ANNOUNCE_MS = 250;
const decoder = new TextDecoder();

interface Announcement {
  /** The subtask's index. */
  readonly i: number;
  /** Parts it has finished. */
  readonly n: number;
  /** Whether it waits for the others. */
  readonly w: boolean;
  /** An answer to a waiting subtask (never answered itself: two waiting subtasks would answer each other for ever). */
  readonly r: boolean;
}

const isAnnouncement = (m: unknown): m is Announcement => {
  const a = m as Partial<Announcement> | null;
  return typeof a === "object" && a !== null && Number.isInteger(a.i) && Number.isInteger(a.n) && typeof a.w === "boolean" && typeof a.r === "boolean";
};

export class HybridSwitch {
  /** Parts each subtask finished, as last heard (this subtask's own included). */
  private readonly finished: number[];
  private readonly sub: Subscription;
  private announcer: ReturnType<typeof setInterval> | undefined;
  private wake: (() => void) | undefined;
  private closed = false;

  constructor(
    private readonly nc: NatsConnection,
    private readonly subject: string,
    private readonly index: number,
    parallelism: number,
    /** Parts this subtask finished when it starts (the part it resumes in). */
    finishedParts: number,
  ) {
    this.finished = Array.from({ length: parallelism }, () => 0);
    this.finished[index] = finishedParts;
    this.sub = nc.subscribe(subject, { callback: (err, msg) => { if (!err) this.heard(msg.data); } });
    this.announce();
  }

  /** This subtask finished `parts` parts; it now waits for the others (see waitForAll). */
  finish(parts: number): void {
    this.finished[this.index] = parts;
    if (this.announcer === undefined && !this.closed) {
      this.announcer = setInterval(() => this.announce(), ANNOUNCE_MS);
      this.announcer.unref();
    }
    this.announce();
  }

  /** Whether every subtask finished this subtask's parts: it may open the next. */
  get allFinished(): boolean {
    const mine = this.finished[this.index]!;
    return this.finished.every((n) => n >= mine);
  }

  /**
   * Resolves true once every subtask finished this subtask's parts, or false after `ms` (the source loop
   * goes on between polls: checkpoints, a stop), or at close.
   */
  waitForAll(ms: number): Promise<boolean> {
    if (this.allFinished) return Promise.resolve(this.done());
    if (this.closed) return Promise.resolve(false);
    return new Promise((resolve) => {
      const timer = setTimeout(() => { this.wake = undefined; resolve(false); }, ms);
      this.wake = () => {
        clearTimeout(timer);
        this.wake = undefined;
        resolve(this.allFinished ? this.done() : false);
      };
    });
  }

  close(): void {
    this.closed = true;
    this.stopAnnouncing();
    this.sub.unsubscribe();
    this.wake?.();
  }

  private done(): true {
    this.stopAnnouncing();
    return true;
  }

  private stopAnnouncing(): void {
    if (this.announcer !== undefined) clearInterval(this.announcer);
    this.announcer = undefined;
  }

  private get waiting(): boolean { return this.announcer !== undefined; }

  private announce(reply = false): void {
    if (this.closed) return;
    const a: Announcement = { i: this.index, n: this.finished[this.index]!, w: this.waiting, r: reply };
    try {
      this.nc.publish(this.subject, JSON.stringify(a));
    } catch {
      // The connection closed: the job is ending (or restarts, with a new attempt's subject).
    }
  }

  private heard(data: Uint8Array): void {
    let a: unknown;
    try { a = JSON.parse(decoder.decode(data)); } catch { return; }
    if (!isAnnouncement(a) || a.i === this.index || a.i < 0 || a.i >= this.finished.length) return;
    if (a.n > this.finished[a.i]!) this.finished[a.i] = a.n;
    // A waiting subtask this one has caught up with needs to hear it (it may have subscribed after this
    // one's last announcement), before this one moves on and maybe ends; one still behind says so itself
    // once it finishes.
    if (a.w && !a.r && this.finished[this.index]! >= a.n) this.announce(true);
    this.wake?.();
  }
}
