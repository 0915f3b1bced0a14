// The job's side of the control protocol (control-protocol.ts): decodes each request, calls the handler
// of its verb and replies; a bad request or a handler's failure is answered with a failure report.

import type { NatsConnection, Subscription } from "@nats-io/transport-node";
import type { JobState } from "./machine.ts";
import { ManualClock, type Clock } from "../../runtime/core/clock.ts";
import { describeError } from "../../runtime/core/errors.ts";
import { GlobalNames, type JobNames } from "../../runtime/core/names.ts";
import { ControlProtocol, ControlVerb, decodeMessage, encodeMessage, type ControlReply, type ControlRequest, type FailureReport, type JobEnded, type PingReply } from "./control-protocol.ts";
import type { JobStatus } from "./job-status.ts";

/** What the control verbs need of a job (JobRunner). */
export interface ControlledJob {
  readonly state: JobState;
  readonly checkpointing: boolean;
  status(): JobStatus;
  stop(options: { savepoint: boolean }): Promise<unknown>;
  cancel(): Promise<unknown>;
  triggerCheckpoint(): Promise<number>;
  failSubtask(id: string): boolean;
  /** Processing time of the job's subtasks: a ManualClock (`weir run --manual-clock`) moves by advance-clock. */
  readonly clock: Clock;
  /** A job spread over workers: their manual clocks move on to the leader's time too. */
  advanceFollowers?(toMs: number): Promise<void>;
}

export type ControlHandlers = { readonly [V in ControlVerb]: (request: ControlRequest<V>) => ControlReply<V> | Promise<ControlReply<V>> };

/** The verbs' handlers for a job: requests start what they ask for and answer at once. */
export function handlersFor(job: ControlledJob): ControlHandlers {
  return {
    status: () => job.status(),
    stop: ({ savepoint = false }) => {
      if (savepoint && !job.checkpointing) return { ok: false, error: "stop --savepoint needs checkpointing (checkpointIntervalMs)" };
      void job.stop({ savepoint }).catch(() => {});
      return { ok: true, state: job.state };
    },
    cancel: () => { void job.cancel(); return { ok: true }; },
    checkpoint: () => {
      if (!job.checkpointing) return { ok: false, error: "checkpoints are off for this job" };
      if (job.state !== "running") return { ok: false, error: `the job is ${job.state}: a checkpoint can be taken once it runs again` };
      void job.triggerCheckpoint().catch(() => {});
      return { ok: true };
    },
    "fail-subtask": ({ subtask }) => ({ ok: job.failSubtask(subtask) }),
    "advance-clock": async ({ ms }) => {
      const clock = job.clock;
      if (!(clock instanceof ManualClock)) return { ok: false, error: "the job runs on the system clock (start it with weir run --manual-clock <ms> to move its processing time by hand)" };
      if (!Number.isFinite(ms) || ms < 0) return { ok: false, error: `ms: expected a non-negative number of milliseconds, got ${ms}` };
      // Fires the timers due on the way, in time order (each subtask runs them from its mailbox); then
      // the other workers' clocks (each process keeps one) move to the same time.
      clock.advance(ms);
      const now = clock.now();
      try {
        await job.advanceFollowers?.(now);
      } catch (e) {
        return { ok: false, error: `${describeError(e)} (this worker's clock is at ${now})` };
      }
      return { ok: true, now };
    },
  };
}

/** Subscribes every verb's subject and the discovery ping; unsubscribe the result to stop serving. */
export function serveControl(nc: NatsConnection, names: JobNames, handlers: ControlHandlers, ping: () => PingReply): Subscription[] {
  const subs: Subscription[] = [];
  for (const verb of Object.values(ControlVerb)) {
    const subject = names.control(verb);
    subs.push(nc.subscribe(subject, {
      callback: (err, msg) => {
        if (err) return;
        let answer: ControlReply<typeof verb> | FailureReport | Promise<ControlReply<typeof verb>>;
        try {
          const request = decodeMessage(ControlProtocol[verb].request as never, msg.data, `request on ${subject}`);
          answer = (handlers[verb] as (r: unknown) => ControlReply<typeof verb> | Promise<ControlReply<typeof verb>>)(request);
        } catch (e) {
          answer = { error: describeError(e) };
        }
        const respond = (a: ControlReply<typeof verb> | FailureReport) => { if (msg.reply) msg.respond(encodeMessage(a)); };
        if (answer instanceof Promise) answer.then(respond, (e: unknown) => respond({ error: describeError(e) }));
        else respond(answer);
      },
    }));
  }
  subs.push(nc.subscribe(GlobalNames.jobsPing, { callback: (err, msg) => { if (!err && msg.reply) msg.respond(encodeMessage(ping())); } }));
  return subs;
}

/** Tells whoever waits for the end (`weir stop`, the workers) how the job ended; a closed connection: nobody can hear it. */
export function publishJobEnded(nc: NatsConnection, names: JobNames, end: JobEnded): void {
  try {
    nc.publish(names.ended, encodeMessage(end));
  } catch { /* closed */ }
}
