// A reader's "something arrived" signal: pollNext waits on it for at most a short time (the contract asks
// for an empty batch within ~50 ms when nothing comes; longer when the subtask passes `maxWaitMs` to an idle
// reader, whose `interrupt` then notifies it), and the subscription callback wakes it. Waking is
// a plain resolve: callbacks for one socket read all run before the waiter's continuation, so the batch
// the reader then drains holds everything that read delivered.

export const POLL_WAIT_MS = 50;

export class Wakeup {
  private waiter: (() => void) | undefined;
  private timer: NodeJS.Timeout | undefined;

  notify(): void {
    const w = this.waiter;
    if (w === undefined) return;
    this.waiter = undefined;
    clearTimeout(this.timer);
    w();
  }

  /** Resolves on the next notify or after `ms`, whichever is first. */
  wait(ms: number | undefined = POLL_WAIT_MS): Promise<void> {
    this.notify(); // never leave an older waiter hanging
    return new Promise<void>((resolve) => {
      this.waiter = resolve;
      this.timer = setTimeout(() => this.notify(), ms);
    });
  }
}
