// `weir run <job.ts>`: runs a job until its bounded sources end, SIGINT/SIGTERM (graceful stop; a second
// signal cancels) or `weir stop`. Prints live progress and a summary; exit code 0 on success. With
// `--http ADDR` it serves /metrics (runtime/cli/metrics/) and the web dashboard at / (runtime/cli/dashboard/)
// while it runs.

import { resolve } from "node:path";
import type { JobOptions } from "../../api/options.ts";
import type { StreamEnvironment } from "../../api/environment.ts";
import { describeJobGraph } from "../../graph/job-graph.ts";
import type { JobResult, JobStatus } from "../../../actors/job/job-runner.ts";
import { stoppedWhileFailing } from "../../../actors/job/restart-strategy.ts";
import { describeError, ErrorCode, messageOf, WeirError } from "../../core/errors.ts";
import type { LogLevel } from "../../core/log.ts";
import { buildJob, loadJob } from "../load-job.ts";
import { ManualClock } from "../../core/clock.ts";
import { EXIT_STOPPED_BEFORE_START, RUN_STARTED_ENV, SUPERVISED_ENV } from "./workers.ts";
import { ProgressReporter, counted, formatCount } from "../progress.ts";
import { createLogger, type WeirLogger } from "../logger.ts";
import { HttpServer, type HttpAddress } from "../http/server.ts";
import { HealthRoutes } from "../http/health.ts";
import { localJobViews, PendingJobViews } from "../http/job-view.ts";
import { MetricsRegistry } from "../metrics/registry.ts";
import { addDashboardRoutes } from "../dashboard/routes.ts";
import type { SnapshotStream } from "../dashboard/events.ts";
import { storedCheckpoints } from "../dashboard/history.ts";
import { wholeJobViews } from "../dashboard/nats-source.ts";
import { describeMode, fetchStatus } from "./control.ts";
import { SignalRoute } from "../signal-route.ts";

export interface RunFlags {
  readonly nats?: string;
  readonly context?: string;
  readonly creds?: string;
  readonly natsReplicas?: number;
  readonly parallelism?: number | "auto";
  readonly restore?: "latest" | "none" | number;
  readonly checkpointInterval?: number;
  readonly stateBackend?: "jetstream-kv" | "heap";
  readonly mode?: "streaming" | "batch" | "automatic";
  readonly plan?: boolean;
  readonly quiet?: boolean;
  readonly http?: HttpAddress;
  readonly logLevel?: LogLevel;
  /** Processing time starts here and moves only by `weir advance-clock` (ManualClock). */
  readonly manualClock?: number;
}

export async function runCommand(path: string, flags: RunFlags): Promise<number> {
  // Until the job's own handlers are in place (runJob): a signal while the job file loads ends with one line.
  const signals = new SignalRoute((sig) => {
    process.stderr.write(`weir: stopped by ${sig} before the job started\n`);
    // A supervised worker stopped while it loads: its supervisor decides how the run ended (another worker
    // failed, or the run was stopped); 130 read as this worker's own failure and became the run's code.
    process.exit(process.env[SUPERVISED_ENV] === "1" ? EXIT_STOPPED_BEFORE_START : 130);
  });
  try {
    return await prepareAndRun(path, flags, signals);
  } finally {
    signals.close();
  }
}

/** The flag that sets each job option `weir run` overrides. */
const FLAG_OF = { natsReplicas: "--nats-replicas", parallelism: "--parallelism", checkpointIntervalMs: "--checkpoint-interval", stateBackend: "--state-backend", mode: "--mode", restore: "--restore" } as const;

/**
 * A job option refused (`checkpointIntervalMs with mode "batch"`, say) that a flag set, not the job file:
 * the line names the flag too, or the user looks for it in the file.
 */
function namingFlags(e: unknown, overrides: Partial<JobOptions>): unknown {
  if (!(e instanceof WeirError) || e.code !== ErrorCode.InvalidOption) return e;
  const flags = (Object.keys(FLAG_OF) as Array<keyof typeof FLAG_OF>)
    .filter((k) => overrides[k] !== undefined && e.message.includes(k))
    .map((k) => `${FLAG_OF[k]} ${String(overrides[k])}`);
  return flags.length === 0 ? e : new WeirError(e.code, `${e.message} (given by weir run ${flags.join(" ")})`, { cause: e });
}

/** `signals`: runJob routes them to its own handlers. */
async function prepareAndRun(path: string, flags: RunFlags, signals: SignalRoute): Promise<number> {
  const job = await loadJob(path);
  const overrides: Partial<JobOptions> = {
    ...(flags.natsReplicas !== undefined ? { natsReplicas: flags.natsReplicas } : {}),
    ...(flags.parallelism !== undefined ? { parallelism: flags.parallelism } : {}),
    ...(flags.checkpointInterval !== undefined ? { checkpointIntervalMs: flags.checkpointInterval } : {}),
    ...(flags.stateBackend !== undefined ? { stateBackend: flags.stateBackend } : {}),
    ...(flags.mode !== undefined ? { mode: flags.mode } : {}),
    ...(flags.restore !== undefined ? { restore: flags.restore } : {}),
  };
  // The connection flags stay apart from the job options: they rank above WEIR_NATS_*, the option below.
  const natsFlags = { ...(flags.nats !== undefined ? { nats: flags.nats } : {}), ...(flags.context !== undefined ? { context: flags.context } : {}), ...(flags.creds !== undefined ? { creds: flags.creds } : {}) };
  const logger = createLogger({ job: job.options.name, level: flags.logLevel ?? "info" });
  // /metrics counts on across restarts from each replaced subtask's final figures.
  let metrics: MetricsRegistry | undefined;
  const clock = flags.manualClock !== undefined ? { clock: new ManualClock(flags.manualClock) } : {};
  let env: StreamEnvironment;
  try {
    env = buildJob(job, path, overrides, { natsFlags, log: logger.log, onSubtasksRetired: (ended) => metrics?.retire(job.options.name, ended), ...clock });
  } catch (e) {
    throw namingFlags(e, overrides);
  }
  if (flags.plan) {
    process.stdout.write(`${describeJobGraph(env.jobGraph())}\n`);
    return 0;
  }
  // Bound before the job starts: a port in use is a failure to start, not a surprise later.
  const http = flags.http ? new HttpServer() : undefined;
  metrics = http ? new MetricsRegistry() : undefined;
  let served: HttpAddress | undefined;
  const health = http ? new HealthRoutes(http, job.options.name) : undefined;
  if (http && metrics) served = await http.addRoute("/metrics", metrics.route()).listen(flags.http!);
  // The dashboard from the bind on: while the job starts it shows no job yet (PendingJobViews).
  const pending = new PendingJobViews();
  const dashboard = http ? addDashboardRoutes(http, { source: pending, seedCheckpoints: storedCheckpoints(() => env.connection()) }) : undefined;
  const run: { worker?: string; readonly jobFile: string } = { jobFile: resolve(path) };
  // A promise nobody awaited or caught, or a throw from a callback, leaves the job's state unknown: the
  // process ends as a crash does (the next run, or --workers' supervisor, resumes from the last
  // checkpoint), with one line, as Node's own default would end it with a stack trace.
  const crash = (what: string) => (e: unknown) => {
    const line = `${what}: ${messageOf(e)} (in the job's code or weir's); ending as a crash does: the next run resumes from the last checkpoint`;
    if (logger.json) logger.command(line, { level: "fatal", err: e, ...(run.worker !== undefined ? { worker: run.worker } : {}) });
    else process.stderr.write(`weir: ${line}\n`);
    logger.flush();
    process.exit(1);
  };
  const onRejection = crash("unhandled promise rejection");
  const onException = crash("uncaught exception");
  process.on("unhandledRejection", onRejection);
  process.on("uncaughtException", onException);
  try {
    return await runJob(env, flags, logger, signals, http && metrics && served && dashboard ? { http, metrics, served, pending, dashboard, health: health! } : undefined, run);
  } catch (e) {
    // Off a terminal, a failure of the running job with its cause chain for the log collector; main.ts then
    // prints its one line (alone when the job never started: a bad setting, an unreachable server).
    if (logger.json && run.worker !== undefined) logger.command(describeError(e), { level: "fatal", err: e, worker: run.worker });
    throw e;
  } finally {
    process.off("unhandledRejection", onRejection);
    process.off("uncaughtException", onException);
    await dashboard?.close();
    await http?.close();
    logger.flush();
  }
}

interface Serving {
  readonly http: HttpServer;
  readonly metrics: MetricsRegistry;
  readonly served: HttpAddress;
  readonly pending: PendingJobViews;
  readonly dashboard: SnapshotStream;
  readonly health: HealthRoutes;
}

/** `worker`: set once the job started (this process's worker id, for the log lines about its end). */
async function runJob(env: StreamEnvironment, flags: RunFlags, logger: WeirLogger, signals: SignalRoute, serving: Serving | undefined, run: { worker?: string; readonly jobFile: string }): Promise<number> {
  // Every `weir run` is a worker of its job: alone, it runs every subtask; with others, it shares them.
  // The run this process belongs to began with its supervisor (`--workers N`), else with this process.
  // A signal while the job is still starting (its first deployment may wait for a stream, retrying) ends
  // the start: cancelled, one line, not a kill without a word.
  let stoppedBy: string | undefined;
  let closing: Promise<void> | undefined;
  const beforeStart = (sig: string) => {
    if (closing) return;
    stoppedBy = sig;
    logger.command(`${sig}: stopping ${env.options.name} before it started`);
    closing = env.close();
  };
  signals.route(beforeStart);
  let client: Awaited<ReturnType<StreamEnvironment["executeAsWorker"]>> | undefined;
  // /metrics and the dashboard show the job from its worker's creation on, while it still starts (its first
  // deployment may wait and retry), and the line saying where they are is printed then.
  const serve = (worker: { readonly workerId: string; status(): JobStatus }) => {
    if (!serving) return;
    const views = localJobViews({ status: () => worker.status(), workerId: worker.workerId });
    serving.metrics.attach(views, { job_name: env.options.name, worker: worker.workerId });
    serving.pending.attach(wholeJobViews(views, async () => fetchStatus(await env.connection(), env.options.name)));
    serving.health.attach(() => worker.status());
    const base = `http://${serving.served.host.includes(":") ? `[${serving.served.host}]` : serving.served.host}:${serving.served.port}`;
    logger.command(`serving metrics on ${base}/metrics, dashboard on ${base}/, probes on ${base}/healthz and /readyz`, { worker: worker.workerId });
  };
  try {
    client = await env.executeAsWorker({ startedAt: Number(process.env[RUN_STARTED_ENV]) || Math.floor(performance.timeOrigin), onCreated: serve, stopEndsJob: process.env[SUPERVISED_ENV] === "1", entryFile: run.jobFile });
  } catch (e) {
    if (!closing) throw e;
  }
  if (closing || client === undefined) {
    await closing;
    // A supervised worker still joining (started again after a crash) when its supervisor passed a stop
    // on: the supervisor decides whether the run failed, as other workers may have stopped the job fine.
    if (process.env[SUPERVISED_ENV] === "1") {
      logger.command(`${env.options.name}: stopped by ${stoppedBy} before this worker joined the job`);
      return EXIT_STOPPED_BEFORE_START;
    }
    throw new WeirError(ErrorCode.Cancelled, `${env.options.name} stopped by ${stoppedBy} before it started`);
  }
  run.worker = client.workerId;
  const status = () => client.status();
  const progress = new ProgressReporter(status, { onLine: (text, s) => logger.command(text, progressFields(s, client.workerId)) });
  if (!flags.quiet) {
    logger.command(`running ${client.jobName} (parallelism ${env.options.reactive ? `auto, ${client.status().parallelism} now` : env.options.parallelism}, state ${env.options.stateBackend}), mode ${describeMode(client.status()) ?? env.options.mode}`, { worker: client.workerId });
    progress.start();
  }
  let signalsSeen = 0;
  const onSignal = (sig: string) => {
    signalsSeen++;
    if (signalsSeen === 1) {
      if (!logger.json) process.stderr.write("\n");
      logger.command(`${sig}: stopping ${client.jobName} gracefully (again to cancel)`, { worker: client.workerId });
      // The job's end (a failure after the stop included) is reported by client.result() below.
      client.stop().catch(() => {});
      // A job failing over (its NATS server gone, say) stops only once it runs again, and one going on
      // through a disconnect once NATS is back: say so, once.
      const waiting = setInterval(() => {
        const { state, natsDisconnectedSince } = client.status();
        const failingOver = state === "restarting";
        if (!failingOver && natsDisconnectedSince === undefined) return;
        clearInterval(waiting);
        const until = failingOver ? "it stops once it runs again" : "NATS is disconnected, it stops once NATS is back";
        logger.command(`${client.jobName} is ${state}: ${until} (its final checkpoint needs NATS); again to cancel`, { worker: client.workerId });
      }, 5_000);
      waiting.unref();
      void client.result().finally(() => clearInterval(waiting)).catch(() => {});
    } else client.cancel().catch(() => {});
    logger.flush();
  };
  signals.route(onSignal);
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
    signals.close();
    await serving?.dashboard.close(); // with the job's final state; before the connection its checkpoint history reads goes
    await env.close();
  }
  if (!flags.quiet) {
    const s = result.status;
    const secs = result.durationMs / 1000;
    if (logger.json) logger.command(progress.line(s), progressFields(s, client.workerId));
    else process.stderr.write(`${progress.line(s)}\n`);
    // A stop with a savepoint names it, as `weir stop --savepoint` does (the worker that led took it).
    const last = s.checkpoints?.lastCompleted;
    const savepoint = result.state === "stopped" && last?.kind === "savepoint" ? `; savepoint ${last.id} taken (weir run resumes from it)` : "";
    // A worker that left: the job itself goes on, so "stopped" would say the wrong thing.
    const ended = result.left ? `: this worker left the job (it goes on on its other workers)` : ` ${result.state}`;
    // A follower's figures are its own subtasks' only: said, beside the leader's line with the job's.
    const share = result.share ? " (this worker's share; the leader's line counts the whole job)" : "";
    process.stdout.write(`weir: ${result.job}${ended} after ${secs.toFixed(1)}s: ${counted(s.recordsIn, "record")} in (${formatCount(s.recordsIn / Math.max(secs, 0.001))}/s), ${formatCount(s.recordsOut)} out, ${counted(s.deadLetters, "dead letter")}${share}${savepoint}\n`);
  }
  // Stopped while failing over: no final checkpoint, and the job was failing; say why, and exit non-zero.
  if (result.failure !== undefined) throw new WeirError(ErrorCode.InvalidJob, stoppedWhileFailing(result.job, result.failure));
  return result.state === "cancelled" ? 1 : 0;
}

function progressFields(s: JobStatus, worker: string): Record<string, unknown> {
  return { worker, state: s.state, recordsIn: s.recordsIn, recordsOut: s.recordsOut, deadLetters: s.deadLetters, restarts: s.restarts, ...(s.checkpoints ? { checkpoints: s.checkpoints.completed } : {}) };
}
