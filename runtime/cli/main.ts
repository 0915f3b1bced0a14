// weir's command line. Every failure ends in one line on stderr and a non-zero exit code.

import { Command, InvalidArgumentError, Option } from "commander";
import { describeError, ErrorCode, WeirError } from "../core/errors.ts";
import { isPositiveInt } from "../core/validation.ts";
import { runCommand, type RunFlags } from "./commands/run.ts";
import { advanceClockCommand, statusCommand, stopCommand } from "./commands/control.ts";
import { natsCommand } from "./commands/nats.ts";
import { parseLogLevel } from "./logger.ts";
import { DEFAULT_HTTP_HOST, parseHttpAddress } from "./http/server.ts";

function positiveInt(name: string) {
  return (v: string): number => {
    const n = Number(v);
    if (!isPositiveInt(n)) throw new InvalidArgumentError(`${name} expects a positive integer, got "${v}"`);
    return n;
  };
}
function nonNegativeInt(name: string) {
  return (v: string): number => {
    const n = Number(v);
    if (!Number.isInteger(n) || n < 0) throw new InvalidArgumentError(`${name} expects a non-negative integer, got "${v}"`);
    return n;
  };
}

const program = new Command("weir")
  .description("Flink-style stateful stream processing for TypeScript on NATS")
  // A usage error is one line, as every other failure: "weir: unknown option '--bogus' (weir --help: usage)".
  .configureOutput({ outputError: (str, write) => write(`weir: ${str.split("\n")[0]!.replace(/^error: /, "")} (weir --help: usage)\n`) });

/** --nats, --context, --creds: how every command that talks to NATS connects (runtime/nats/connection-settings.ts). */
function natsOptions(command: Command): Command {
  return command
    .addOption(new Option("--nats <url>", "NATS server URL(s), comma-separated (default: WEIR_NATS_URL, else the embedded server)"))
    .addOption(new Option("--context <name>", "a nats CLI context ($XDG_CONFIG_HOME/nats/context/<name>.json)"))
    .addOption(new Option("--creds <file>", "NATS credentials file (user JWT and NKey seed)"));
}

/** A command's action: its result is the process's exit code. */
const action = <A extends unknown[]>(f: (...a: A) => Promise<number>) => async (...a: A) => { process.exitCode = await f(...a); };

natsOptions(program.command("run"))
  .description("run a job module (default export: defineJob(...))")
  .argument("<job>", "the job's .ts (or .js) file")
  .option("--parallelism <n>", "default parallelism of the job's operators, or auto (from the number of workers)", (v: string) => {
    if (v === "auto") return "auto";
    if (!isPositiveInt(Number(v))) throw new InvalidArgumentError(`--parallelism expects a positive integer or auto, got "${v}"`);
    return Number(v);
  })
  .option("--restore <what>", "latest | none | <checkpoint-id> (default latest)", (v: string) => {
    if (v === "latest" || v === "none") return v;
    const n = Number(v);
    if (!Number.isInteger(n) || n < 0) throw new InvalidArgumentError(`--restore expects latest, none or a checkpoint id, got "${v}"`);
    return n;
  })
  .option("--checkpoint-interval <ms>", "checkpoint every <ms> (0: off)", nonNegativeInt("--checkpoint-interval"))
  .option("--nats-replicas <n>", "replicas of every stream and KV bucket the job creates (3 on a three-node cluster)", positiveInt("--nats-replicas"))
  .addOption(new Option("--state-backend <kind>", "where keyed state lives").choices(["jetstream-kv", "heap"]))
  .addOption(new Option("--mode <mode>", "execution mode (the job option mode)").choices(["streaming", "batch", "automatic"]))
  .option("--workers <n>", "start N local worker processes of the job and supervise them", positiveInt("--workers"))
  .option("--plan", "print the job graph (chains, parallelism, edges) and exit")
  .option("--quiet", "no progress line and no summary")
  .option("--http <addr>", `serve the dashboard at / and Prometheus metrics at /metrics on host:port (:port or port: host ${DEFAULT_HTTP_HOST}); with --workers N, worker n on port + n - 1`, httpAddress)
  .option("--log-level <level>", "trace, debug, info, warn, error or fatal (default info); off a terminal logs are JSON lines", parseLogLevel)
  .option("--manual-clock <ms>", "processing time starts at <ms> (since the epoch) and moves only by `weir advance-clock` (tests, scenarios); every worker of the job needs it", nonNegativeInt("--manual-clock"))
  .action(action(async (job: string, flags: RunFlags & { workers?: number }) => {
    if (flags.workers === undefined || flags.workers === 1 || flags.plan) return runCommand(job, flags);
    // Worker n listens on port + n - 1: say so before starting any, not through a worker failing on a port never typed.
    const last = flags.http && flags.http.port > 0 ? flags.http.port + flags.workers - 1 : 0;
    const host = flags.http?.host.includes(":") ? `[${flags.http.host}]` : flags.http?.host;
    if (last > 65535) throw new WeirError(ErrorCode.InvalidOption, `--http ${host}:${flags.http!.port} with --workers ${flags.workers}: worker ${flags.workers} would listen on port ${last} (ports end at 65535); give a lower port, or 0 for free ones`);
    const { superviseWorkers } = await import("./commands/workers.ts");
    return superviseWorkers(flags.workers, withoutWorkersFlag(process.argv.slice(process.argv.indexOf("run") + 1)));
  }));

function httpAddress(v: string) {
  try {
    return parseHttpAddress(v);
  } catch (e) {
    throw new InvalidArgumentError((e as Error).message);
  }
}

/** The `weir run` arguments as given, without `--workers N` (each worker is one process). */
function withoutWorkersFlag(args: readonly string[]): string[] {
  const out: string[] = [];
  for (let i = 0; i < args.length; i++) {
    if (args[i] === "--workers") { i++; continue; }
    if (args[i]!.startsWith("--workers=")) continue;
    out.push(args[i]!);
  }
  return out;
}

natsOptions(program.command("status"))
  .description("running jobs, their subtasks and actor states")
  .argument("[job]", "one job (default: all running jobs)")
  .option("--json", "the full status as JSON")
  .action(action((job: string | undefined, flags) => statusCommand(job, flags)));

natsOptions(program.command("stop"))
  .description("graceful stop: sources stop, records in flight drain, sinks flush")
  .argument("<job>", "the job's name")
  .option("--savepoint", "take a savepoint before stopping (resumable at another parallelism)")
  .option("--timeout <s>", "how long to wait for the job to confirm it stopped (default 60)", positiveInt("--timeout"))
  .action(action((job: string, flags) => stopCommand(job, flags)));

natsOptions(program.command("advance-clock"))
  .description("move a job's processing time on (a job run with --manual-clock): its due timers fire")
  .argument("<job>", "the job's name")
  .argument("<ms>", "how far, in milliseconds", nonNegativeInt("<ms>"))
  .action(action((job: string, ms: number, flags) => advanceClockCommand(job, ms, flags)));

natsOptions(program.command("checkpoints"))
  .description("a job's completed checkpoints and savepoints: duration, state changed, alignment, acks")
  .argument("<job>", "the job's name")
  .option("--json", "as JSON")
  .action(action(async (job: string, flags: { nats?: string; context?: string; creds?: string; json?: boolean }) => {
    const { checkpointsCommand } = await import("./commands/checkpoints.ts");
    return checkpointsCommand(job, flags);
  }));

natsOptions(program.command("dashboard"))
  .description("a web dashboard (and /metrics) of every job on the NATS server, read-only")
  .option("--http <addr>", "host:port to serve on (:port or port: host 127.0.0.1; default 127.0.0.1:9464)", httpAddress)
  .action(action(async (flags: { nats?: string; context?: string; creds?: string; http?: ReturnType<typeof parseHttpAddress> }) => {
    const { dashboardCommand } = await import("./commands/dashboard.ts");
    return dashboardCommand(flags);
  }));

natsOptions(program.command("caches"))
  .description("cached streams (DataStream.cache): job, environment, size, age, owner alive; drop them")
  .argument("[job]", "one job (default: every job)")
  .option("--drop-dead", "delete the cache streams whose owning process is gone")
  .option("--drop <env>", "delete one environment's cache stream")
  .option("--drop-all", "delete every cache stream listed")
  .option("--json", "as JSON")
  .action(action(async (job: string | undefined, flags) => {
    const { cachesCommand } = await import("./commands/caches.ts");
    return cachesCommand(job, flags);
  }));

natsOptions(program.command("dead-letters"))
  .description("a job's dead letters (weir.<job>.dlq): when, from where, why, the record; replay or purge them")
  .argument("<job>", "the job's name")
  .option("--last <n>", "the latest <n> letters (default 100)", positiveInt("--last"))
  .option("--replay", "publish each listed letter's record again, to the subject it came from (once its cause is fixed)")
  .option("--to <subject>", "with --replay: publish to this subject instead")
  .option("--purge", "delete the listed letters (with --replay: those replayed)")
  .option("--json", "as JSON")
  .action(action(async (job: string, flags) => {
    const { deadLettersCommand } = await import("./commands/dead-letters.ts");
    return deadLettersCommand(job, flags);
  }));

program.command("nats")
  .description("start (or reuse) the embedded default NATS server and print its URL")
  .action(action(() => natsCommand()));

program.command("scenario")
  .description("run scenario files (default: scenarios/) on a fresh server and print a pass/fail table")
  .argument("[paths...]", "scenario files or folders")
  .option("--verbose", "print each step as it runs")
  .action(action(async (paths: string[], flags: { verbose?: boolean }) => {
    const { scenarioCommand } = await import("../../scenarios/cli.ts");
    return scenarioCommand(paths, flags);
  }));

natsOptions(program.command("demo"))
  .description("the page-view demo: events into JetStream, keyed per-user and per-page counts, live progress")
  .option("--forever", "run as a daemon until SIGINT/SIGTERM")
  .option("--duration <s>", "how long to produce events (default 30)", positiveInt("--duration"))
  .option("--rate <n>", "page views per second the producer aims at (default 20000)", positiveInt("--rate"))
  .option("--http <addr>", "serve the dashboard and /metrics on host:port (default: a free port on 127.0.0.1)", httpAddress)
  .action(action(async (flags: { forever?: boolean; duration?: number; rate?: number; nats?: string; context?: string; creds?: string; http?: ReturnType<typeof parseHttpAddress> }) => {
    if (flags.forever && flags.duration !== undefined) throw new WeirError(ErrorCode.InvalidOption, "demo: --forever and --duration together; give one");
    const { demoCommand } = await import("../../examples/demo/run.ts");
    return demoCommand(flags);
  }));

/** Exits once stdout and stderr are written out: on a pipe they are asynchronous, and exit() cut a long `--json` short. */
async function exit(code: number): Promise<never> {
  const written = Promise.all([process.stdout, process.stderr].map((s) => new Promise<void>((resolve) => s.write("", () => resolve()))));
  // A reader that stops reading (a full pipe) must not keep the process: 5 s, then exit regardless.
  await Promise.race([written, new Promise<void>((resolve) => setTimeout(resolve, 5_000).unref())]);
  process.exit(code);
}

try {
  await program.parseAsync(process.argv);
  await exit(Number(process.exitCode ?? 0));
} catch (e) {
  process.stderr.write(`weir: ${describeError(e)}\n`);
  await exit(1);
}
