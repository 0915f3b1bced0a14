// A job name already running on this NATS: a program's own `execute()` of it, or a worker joining a job
// that a program runs alone, would run a second copy over the same input, state and checkpoints (its
// checkpoints then failed and both counted the input). Asked once before the launch: the running job
// answers `status`; no responders is the usual case and costs nothing.

import type { NatsConnection } from "@nats-io/transport-node";
import { askControl, ControlSilence } from "../../actors/job/control-client.ts";
import { ControlVerb } from "../../actors/job/control-protocol.ts";
import { ErrorCode, WeirError } from "../core/errors.ts";

const ENDED = new Set(["finished", "stopped", "cancelled", "failed"]);

/** `as`: how this launch runs; workers join a job of workers (its status has an epoch), never a lone one. */
export async function refuseIfRunningElsewhere(nc: NatsConnection, job: string, as: "alone" | "worker"): Promise<void> {
  let reply;
  try {
    reply = await askControl(nc, job, ControlVerb.Status, {}, 1000);
  } catch {
    return; // a job failing to answer is no proof that one runs; the launch goes on as before
  }
  if (reply === ControlSilence.Nobody || reply === ControlSilence.NoAnswer || ENDED.has(reply.state)) return;
  const overWorkers = (reply as { epoch?: unknown }).epoch !== undefined;
  if (as === "worker" && overWorkers) return;
  const runs = overWorkers ? "runs on workers (weir run)" : "runs in another program (StreamEnvironment.execute)";
  const fix = as === "worker" ? "stop it first, or run every copy as a worker" : "run it as a worker (weir run, executeAsWorker) to join it, or stop it first";
  throw new WeirError(ErrorCode.InvalidJob, `job ${job} is already running on this NATS server: it ${runs}; ${fix}`);
}
