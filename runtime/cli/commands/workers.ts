// `weir run <job> --workers N`: N local worker processes of the job (one Node thread each: how a job uses
// N cores of one machine), supervised: their output is prefixed with their number, SIGINT/SIGTERM go to
// every one (the job stops gracefully), and a worker that crashes is started again (it joins the job
// again, which continues from its last checkpoint meanwhile); one that fails by itself stops them all.

import { spawn, type ChildProcess } from "node:child_process";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";

const WEIR_BIN = fileURLToPath(new URL("../../../bin/weir.mjs", import.meta.url));
/**
 * Node flags of a worker: its young generation as the `weir` command's shebang sets it (bin/weir.mjs),
 * or as this supervisor was started with.
 */
function workerNodeFlags(): string[] {
  const given = process.execArgv.filter((a) => a.startsWith("--max-semi-space-size")).slice(-1);
  return given.length > 0 ? given : ["--max-semi-space-size=32"];
}
/** A worker that crashes this often within a minute is not started again (its crash is not transient). */
const MAX_CRASHES_PER_MINUTE = 5;
const RESTART_DELAY_MS = 500;
/** Set for the workers this command starts (runtime/cli/commands/run.ts watches its stdin then). */
export const SUPERVISED_ENV = "WEIR_SUPERVISED";
/** When the supervisor started (epoch ms): its workers' run, so a late one ends with the job (actors/worker/job-worker.ts). */
export const RUN_STARTED_ENV = "WEIR_RUN_STARTED_AT";
/** A supervised worker's exit code when the supervisor's stop reached it before it joined the job. */
export const EXIT_STOPPED_BEFORE_START = 3;

/** `args`: the `weir run` arguments without `--workers`. Resolves the exit code once every worker ended. */
export async function superviseWorkers(count: number, args: readonly string[]): Promise<number> {
  const jobFile = args.find((a) => /\.[cm]?[jt]s$/.test(a)) ?? "the job";
  process.stderr.write(`weir: starting ${count} workers of ${jobFile}\n`);
  const runStartedAt = String(Date.now());
  let stopping = false;
  const crashes: number[] = [];
  const codes: number[] = [];
  /** Workers the stop reached while they still started: the run failed only if no worker stopped the job. */
  let stoppedBeforeStart = 0;
  const running = new Set<ChildProcess>();
  let wake: (() => void) | undefined;
  /** Each worker's latest one-line failure ("weir: ..." on stderr), and the first worker that failed by itself. */
  const failureLines = new Map<number, string>();
  let firstFailed: number | undefined;

  const launch = (n: number): void => {
    // stdin is a pipe from here: when this process dies, even by SIGKILL, it closes and the worker ends.
    // A process group of its own: a Ctrl-C on the terminal reaches this supervisor alone, which passes it on
    // once (each worker receiving it twice would take the second as "cancel").
    const child = spawn(process.execPath, [...workerNodeFlags(), WEIR_BIN, "run", ...argsOfWorker(args, n)], { stdio: ["pipe", "pipe", "pipe"], detached: true, env: { ...process.env, [SUPERVISED_ENV]: "1", [RUN_STARTED_ENV]: runStartedAt } });
    running.add(child);
    for (const [stream, out] of [[child.stdout!, process.stdout], [child.stderr!, process.stderr]] as const) {
      createInterface({ input: stream }).on("line", (line) => {
        if (out === process.stderr && line.startsWith("weir: ")) failureLines.set(n, line.slice("weir: ".length));
        out.write(workerLine(line, n, out === process.stderr));
      });
    }
    child.on("exit", (code, signal) => {
      running.delete(child);
      const crashed = signal !== null && signal !== "SIGTERM" && signal !== "SIGINT";
      if (crashed && !stopping) {
        const now = Date.now();
        crashes.push(now);
        while (crashes.length && crashes[0]! < now - 60_000) crashes.shift();
        if (crashes.length <= MAX_CRASHES_PER_MINUTE) {
          process.stderr.write(`weir: worker ${n} died (${signal}); starting it again\n`);
          setTimeout(() => {
            if (!stopping) return launch(n);
            // Stopped meanwhile: this worker is not started again, and it counts as ended.
            process.stderr.write(`weir: worker ${n} not started again: the run is stopping\n`);
            codes.push(0);
            wake?.();
          }, RESTART_DELAY_MS);
          return;
        }
        process.stderr.write(`weir: worker ${n} died (${signal}) ${crashes.length} times within a minute; not starting it again\n`);
      }
      // Ended by the stop passed on before it joined (still loading, or joining after a crash).
      if (stopping && (code === EXIT_STOPPED_BEFORE_START || (code === null && !crashed))) {
        stoppedBeforeStart++;
        wake?.();
        return;
      }
      codes.push(code ?? 1);
      // A worker that failed by itself (its job could not start, its port was taken, the job failed):
      // the run fails, rather than going on with fewer workers than asked for.
      if (!crashed && code !== 0 && !stopping) {
        process.stderr.write(`weir: worker ${n} failed (exit code ${code ?? "none"}); stopping the other workers\n`);
        firstFailed ??= n;
        onSignal("SIGTERM");
      }
      wake?.();
    });
  };

  const onSignal = (sig: NodeJS.Signals) => {
    stopping = true;
    for (const c of running) c.kill(sig);
  };
  process.on("SIGINT", onSignal);
  process.on("SIGTERM", onSignal);
  try {
    for (let i = 1; i <= count; i++) launch(i);
    while (running.size > 0 || codes.length + stoppedBeforeStart < count) await new Promise<void>((r) => { wake = r; });
  } finally {
    process.off("SIGINT", onSignal);
    process.off("SIGTERM", onSignal);
  }
  // Stopped before any worker ran the job: the run did not start, as a lone `weir run` stopped so.
  if (codes.length === 0) return 1;
  if (codes.every((c) => c === 0)) return 0;
  // The run's last line says why, as a lone `weir run`'s does (the other workers' stop lines came after it).
  const why = firstFailed === undefined ? undefined : failureLines.get(firstFailed);
  if (why !== undefined) process.stderr.write(`weir: ${why} (worker ${firstFailed})\n`);
  return Math.max(...codes.filter((c) => c !== 0));
}

/**
 * A line of worker n's output as the supervisor passes it on: a JSON log line (stderr) stays one JSON
 * object, with "process": n; every other line, the records a print sink writes to stdout among them,
 * as written behind `[worker n] ` (a record was never rewritten: `{}` became `{"process":1,}`).
 */
export function workerLine(line: string, n: number, stderr: boolean): string {
  if (stderr && line.startsWith("{\"") && line.endsWith("}") && isJsonObject(line)) return `{"process":${n},${line.slice(1)}\n`;
  return `[worker ${n}] ${line}\n`;
}

function isJsonObject(line: string): boolean {
  try {
    const v: unknown = JSON.parse(line);
    return typeof v === "object" && v !== null && !Array.isArray(v);
  } catch {
    return false;
  }
}

/** Worker n's arguments: with `--http host:port`, port + n - 1 (each process serves its own /metrics; port 0 stays 0). */
export function argsOfWorker(args: readonly string[], n: number): string[] {
  const out = [...args];
  for (let i = 0; i < out.length; i++) {
    const inline = out[i]!.startsWith("--http=");
    if (out[i] !== "--http" && !inline) continue;
    const at = inline ? i : i + 1;
    const value = inline ? out[i]!.slice("--http=".length) : out[at];
    const m = value === undefined ? null : /^(.*?)(\d+)$/.exec(value);
    if (!m || Number(m[2]) === 0) continue;
    const moved = `${m[1]}${Number(m[2]) + n - 1}`;
    out[at] = inline ? `--http=${moved}` : moved;
  }
  return out;
}
