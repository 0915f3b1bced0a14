// What the watchdog of a JetStream source lane (jetstream-lane.ts) checks of the stream it reads, besides
// its messages: that it is still the stream the lane started on. A stream deleted and created again starts
// its sequences over, so the lane's position means nothing there; a stream deleted for good sends nothing
// more. Either way the lane fails (the job restarts, or fails, visibly) instead of looking healthy for ever.

import type { JetStreamManager } from "@nats-io/jetstream";
import { ErrorCode, WeirError, messageOf } from "../core/errors.ts";

/** How long the stream must stay missing before the lane fails: "not found" is an answer, but one check is little evidence. */
export const STREAM_GONE_MS = 10_000;

export class StreamIdentity {
  /** Since when the stream is found missing. */
  private missingSince: number | undefined;

  /** The stream was not found at the last check (the lane waits for STREAM_GONE_MS to tell). */
  get missing(): boolean { return this.missingSince !== undefined; }

  /** `created`: when the stream was created, as first seen (undefined: learnt at the first check). */
  constructor(private readonly stream: string, private readonly log: (m: string) => void, private created: string | undefined) {}

  /** The lane's failure, if the stream is no longer the one it read; undefined while all is well (or unknown yet). */
  async check(jsm: JetStreamManager, where: string): Promise<WeirError | undefined> {
    let info;
    try {
      info = await jsm.streams.info(this.stream);
    } catch (e) {
      if (!/stream not found/i.test(messageOf(e))) throw e;
      return this.foundMissing(where);
    }
    this.missingSince = undefined;
    this.created ??= info.created;
    if (info.created === this.created) return undefined;
    return new WeirError(ErrorCode.StreamRecreated, `Sources.jetstream: stream "${this.stream}" was deleted and created again while the job read it (created ${this.created}, now ${info.created}): its sequences start over, so the job's position in it means nothing there; run the job again with --restore none to read the new stream from its start`);
  }

  private foundMissing(where: string): WeirError | undefined {
    const now = Date.now();
    if (this.missingSince === undefined) {
      this.missingSince = now;
      this.log(`Sources.jetstream: stream "${this.stream}" not found (deleted?) while reading ${where}: the source fails unless it is back within ${STREAM_GONE_MS / 1000} s`);
      return undefined;
    }
    if (now - this.missingSince < STREAM_GONE_MS) return undefined;
    return new WeirError(ErrorCode.Source, `Sources.jetstream: stream "${this.stream}" was deleted while the job read it (not found for ${Math.round((now - this.missingSince) / 1000)} s): create or restore it, then run the job again (a new stream starts its sequences over: --restore none reads it from its start)`);
  }
}
