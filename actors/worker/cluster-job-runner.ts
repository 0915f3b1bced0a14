// The job runner of a leading worker: what a job spread over workers adds to the job runner (the effects
// of actors/job/machine.ts's RESCALE, a lost worker, handing over when deposed or leaving).

import { messageOf, type WeirError } from "../../runtime/core/errors.ts";
import { JobRunner, type JobResult } from "../job/job-runner.ts";
import type { CarriedHistory } from "./takeover-history.ts";

export class ClusterJobRunner extends JobRunner {
  /**
   * Over workers too the job rides through a disconnect (see worker-host.ts's onReconnect); the leader's
   * own: commands and reports of a checkpoint in flight may be lost, so it is aborted, and every worker is
   * told to grant and probe again and hears the commands it must not miss (remote-subtask.ts).
   */
  protected override reconnected(): void {
    super.reconnected();
    this.coordinator?.abortPending("the leader's NATS connection was lost and came back (this checkpoint's messages may be lost)");
  }

  /** Deposed leader: stop everything without announcing an end (the job goes on under another worker). */
  abandon(): Promise<JobResult | undefined> {
    this.abandoned = true;
    return this.cancel();
  }

  /**
   * A worker running some of the subtasks died: the job restarts from its last checkpoint without it, at
   * once and not counted against the restart strategy (the job's code did not fail; as Kafka Streams
   * rebalances a lost instance's tasks), as after a NATS outage.
   */
  workerLost(error: WeirError): void {
    this.onSubtaskFailed(undefined, error, "worker", true);
  }

  /**
   * Taking over a live run: the job's restarts and failures so far (takeover-history.ts). Called before
   * the machine starts (while restoring): xstate defers the event until then; `deploying` takes it too.
   */
  carryOn(h: CarriedHistory): void {
    for (const f of h.failures) this.failures.add(f);
    this.actor.send({ type: "CARRY_ON", restarts: h.restarts, notCounted: h.notCounted });
  }

  /** `weir advance-clock` on a manual clock: the other workers' clocks move on to the leader's time `toMs`. */
  advanceFollowers(toMs: number): Promise<void> {
    return this.deployment?.advanceRemoteClocks(toMs) ?? Promise.resolve();
  }

  /** Workers joined or left: a fresh checkpoint, then the job restarts from it over the workers there are now. */
  async rescale(cause: string): Promise<void> {
    if (this.state !== "running") return;
    await this.freshCheckpoint({ pauseSources: true }).catch((e) => this.log(`checkpoint before rescaling failed: ${messageOf(e)}`));
    if (this.state === "running") this.actor.send({ type: "RESCALE", cause });
  }

  /**
   * A checkpoint started now (after the one in flight, if any): what a rescale or a handover restarts
   * from; with `pauseSources`, nothing is read after it, so nothing is read twice.
   */
  async freshCheckpoint(options: { pauseSources?: boolean } = {}): Promise<number | undefined> {
    return this.coordinator?.trigger("checkpoint", options);
  }
}
