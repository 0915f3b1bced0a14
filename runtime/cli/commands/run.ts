// `weir run <job.ts>`: runs a job until its bounded sources end, SIGINT/SIGTERM (graceful stop; a second
// signal cancels) or `weir stop`. Prints live progress and a summary; exit code 0 on success.

import type { JobOptions } from "../../api/options.ts";
import { describeJobGraph } from "../../graph/job-graph.ts";
import type { JobResult } from "../../../actors/job/job-runner.ts";
import { loadJob } from "../load-job.ts";
import { SUPERVISED_ENV } from "./workers.ts";
import { ProgressReporter, formatCount } from "../progress.ts";

export interface RunFlags {
  readonly nats?: string;
  readonly natsReplicas?: number;
  readonly parallelism?: number | "auto";
  readonly restore?: "latest" | "none" | number;
  readonly checkpointInterval?: number;
  readonly stateBackend?: "jetstream-kv" | "heap";
  readonly plan?: boolean;
  readonly quiet?: boolean;
}

export async function runCommand(path: string, flags: RunFlags): Promise<number> {
  const job = await loadJob(path);
  const overrides: Partial<JobOptions> = {
    ...(flags.nats !== undefined ? { nats: flags.nats } : {}),
    ...(flags.natsReplicas !== undefined ? { natsReplicas: flags.natsReplicas } : {}),
    ...(flags.parallelism !== undefined ? { parallelism: flags.parallelism } : {}),
    ...(flags.checkpointInterval !== undefined ? { checkpointIntervalMs: flags.checkpointInterval } : {}),
    ...(flags.stateBackend !== undefined ? { stateBackend: flags.stateBackend } : {}),
    ...(flags.restore !== undefined ? { restore: flags.restore } : {}),
  };
  const env = job.createEnvironment(overrides);
  if (flags.plan) {
    process.stdout.write(`${describeJobGraph(env.jobGraph())}\n`);
    return 0;
  }
  // Every `weir run` is a worker of its job: alone, it runs every subtask; with others, it shares them.
  const client = await env.executeAsWorker();
  const progress = new ProgressReporter(() => client.status());
  if (!flags.quiet) {
    process.stderr.write(`weir: running ${client.jobName} (parallelism ${env.options.reactive ? `auto, ${client.status().parallelism} now` : env.options.parallelism}, state ${env.options.stateBackend})\n`);
    progress.start();
  }
  let signals = 0;
  const onSignal = (sig: string) => {
    signals++;
    if (signals === 1) {
      process.stderr.write(`\nweir: ${sig}: stopping ${client.jobName} gracefully (again to cancel)\n`);
      void client.stop();
    } else void client.cancel();
  };
  process.on("SIGINT", onSignal);
  process.on("SIGTERM", onSignal);
  // Started by `weir run --workers N`: its end (stdin closes) ends this worker too, gracefully if it can.
  if (process.env[SUPERVISED_ENV] === "1") {
    process.stdin.on("end", () => { onSignal("supervisor gone"); setTimeout(() => process.exit(1), 10_000).unref(); });
    process.stdin.resume();
  }
  let result: JobResult;
  try {
    result = await client.result();
  } finally {
    progress.stop();
    process.off("SIGINT", onSignal);
    process.off("SIGTERM", onSignal);
    await env.close();
  }
  if (!flags.quiet) {
    const s = result.status;
    const secs = result.durationMs / 1000;
    process.stderr.write(`${progress.line(s)}\n`);
    process.stdout.write(`weir: ${result.job} ${result.state} after ${secs.toFixed(1)}s: ${formatCount(s.recordsIn)} records in (${formatCount(s.recordsIn / Math.max(secs, 0.001))}/s), ${formatCount(s.recordsOut)} out, ${s.deadLetters} dead letters\n`);
  }
  return result.state === "cancelled" ? 1 : 0;
}
