// The client side of the control protocol (control-protocol.ts): `weir status`, `weir stop` and the
// scenario runner ask a job through these, so requests and replies are checked in one place.

import type { NatsConnection } from "@nats-io/transport-node";
import { ErrorCode, WeirError, messageOf } from "../../runtime/core/errors.ts";
import { GlobalNames, JobNames } from "../../runtime/core/names.ts";
import { ControlProtocol, ControlVerb, JobEnded, PingReply, decodeMessage, decodeReply, encodeMessage, isFailureReport, type ControlReply, type ControlRequest } from "./control-protocol.ts";

/** Why a control request got no reply: no job listens on its subject, or one listens and did not answer in time. */
export const ControlSilence = { Nobody: "nobody listens", NoAnswer: "no answer in time" } as const;
export type ControlSilence = (typeof ControlSilence)[keyof typeof ControlSilence];

/** The job's reply to a control request, or why there is none. A job's failure report is thrown as one line. */
export async function askControl<V extends ControlVerb>(
  nc: NatsConnection, job: string, verb: V, body: ControlRequest<V>, timeoutMs = 2000,
): Promise<ControlReply<V> | ControlSilence> {
  // The request is checked here too: a bad one is the caller's mistake, not the job's.
  decodeMessage(ControlProtocol[verb].request as never, new TextEncoder().encode(encodeMessage(body)), `${verb} request`);
  let data: Uint8Array;
  try {
    data = (await nc.request(new JobNames(job).control(verb), encodeMessage(body), { timeout: timeoutMs })).data;
  } catch (e) {
    if (/no responders|503/i.test(messageOf(e))) return ControlSilence.Nobody;
    if (/timeout/i.test(messageOf(e))) return ControlSilence.NoAnswer;
    throw e;
  }
  const reply = decodeReply(verb, data, job);
  if (isFailureReport(reply)) throw new WeirError(ErrorCode.InvalidJob, `job ${job} could not handle ${verb}: ${reply.error}`);
  return reply;
}

/** The job's reply to a control request, or undefined when there is none (no job, or no answer in time). */
export async function requestControl<V extends ControlVerb>(
  nc: NatsConnection, job: string, verb: V, body: ControlRequest<V>, timeoutMs = 2000,
): Promise<ControlReply<V> | undefined> {
  const r = await askControl(nc, job, verb, body, timeoutMs);
  return typeof r === "string" ? undefined : r;
}

/** Every running job's answer to the discovery ping, within `waitMs`. */
export async function pingJobs(nc: NatsConnection, waitMs = 400): Promise<PingReply[]> {
  const out: PingReply[] = [];
  try {
    const replies = await nc.requestMany(GlobalNames.jobsPing, "", { maxWait: waitMs });
    for await (const m of replies) out.push(decodeMessage(PingReply, m.data, `a reply on ${GlobalNames.jobsPing}`));
  } catch (e) {
    if (e instanceof WeirError) throw e;
    /* no responders: no jobs */
  }
  return out.sort((a, b) => a.job.localeCompare(b.job));
}

/** Calls `onEnd` once with the job's end announcement; subscribe (and flush) before asking it to stop. */
export function onJobEnded(nc: NatsConnection, job: string, onEnd: (end: JobEnded) => void, onBad: (e: unknown) => void): void {
  nc.subscribe(new JobNames(job).ended, {
    max: 1,
    callback: (err, m) => {
      if (err) return;
      try { onEnd(decodeMessage(JobEnded, m.data, `job ${job}'s end announcement`)); } catch (e) { onBad(e); }
    },
  });
}

/** Moves the processing time of `job` (run with --manual-clock) on by `ms`: its time after, or a one-line error. */
export async function advanceJobClock(nc: NatsConnection, job: string, ms: number): Promise<number> {
  // The leader answers once the other workers' clocks moved too (it waits 10 s for each at most).
  const answer = await askControl(nc, job, ControlVerb.AdvanceClock, { ms }, 15_000);
  if (answer === ControlSilence.Nobody) throw new WeirError(ErrorCode.InvalidJob, `job ${job} is not running`);
  if (answer === ControlSilence.NoAnswer) throw new WeirError(ErrorCode.InvalidJob, `job ${job} did not answer advance-clock within 15 s`);
  if (!answer.ok || answer.now === undefined) throw new WeirError(ErrorCode.InvalidOption, `cannot advance the clock of job ${job}: ${answer.error ?? "refused"}`);
  return answer.now;
}
