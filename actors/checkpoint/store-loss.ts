// A job whose checkpoint store is gone (its bucket's stream deleted, or the server's JetStream store lost
// while it was down) can take no checkpoint again: every periodic one fails while the job goes on looking
// healthy, and an exactly-once sink never commits. Once its checkpoints have failed for STORE_GONE_MS
// with "stream not found" and none completed, the coordinator fails the job (onStalled) with the reason;
// the restart strategy then restarts it, and a restart that cannot read the store ends it.

import { ErrorCode, WeirError, messageOf } from "../../runtime/core/errors.ts";

/** How long the store must stay missing: "not found" is an answer, but one failure is little evidence. */
export const STORE_GONE_MS = 10_000;

export class CheckpointStoreLoss {
  private since: number | undefined;
  private failures = 0;

  constructor(
    private readonly job: string,
    private readonly now: () => number,
    private readonly log: (m: string) => void,
    private readonly onGone: (e: WeirError) => void,
  ) {}

  /** Follows a periodic checkpoint: its failure is logged, and fails the job once the store stays gone. */
  watch(checkpoint: Promise<unknown>): void {
    checkpoint.then(() => this.completed(), (e: unknown) => {
      this.log(`periodic checkpoint failed: ${messageOf(e)}`);
      const gone = this.failed(e);
      if (gone) this.onGone(gone);
    });
  }

  /** A periodic checkpoint failed with `e`: the error that fails the job once the store stays gone, else undefined. */
  failed(e: unknown): WeirError | undefined {
    if (!/stream not found/i.test(messageOf(e))) { this.completed(); return undefined; }
    const now = this.now();
    this.since ??= now;
    this.failures++;
    if (now - this.since < STORE_GONE_MS || this.failures < 2) return undefined;
    const gone = new WeirError(ErrorCode.Checkpoint, `checkpoints of job ${this.job} cannot be stored: its checkpoint store is gone (${this.failures} checkpoints in a row over ${Math.round((now - this.since) / 1000)} s failed: ${messageOf(e)}); was the stream deleted, or the server's JetStream store lost?`, { cause: e });
    this.completed();
    return gone;
  }

  /** A checkpoint completed (or failed otherwise): the store is there. */
  completed(): void {
    this.since = undefined;
    this.failures = 0;
  }
}
