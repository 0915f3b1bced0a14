// The job under test as a real child process: `node bin/weir.mjs run <job> --nats <url> --quiet ...`, so
// `kill: process` is a real SIGKILL and `stop` a real SIGTERM. Its stderr is kept (a failure is one line
// there, `weir: <reason>`).

import { spawn, type ChildProcess } from "node:child_process";
import { constants } from "node:os";
import { fileURLToPath } from "node:url";
import type { JobOverrides } from "./format.ts";
import { NATS_ENV_VARS } from "../runtime/nats/connection-settings.ts";

export const WEIR_BIN = fileURLToPath(new URL("../bin/weir.mjs", import.meta.url));
/** stderr kept per process: past it the oldest half goes, as the line that says why a job failed comes last. */
const MAX_STDERR = 1 << 20;

export interface ProcessExit {
  /** The exit code; 128 + the signal's number when a signal ended the process (SIGKILL: 137). */
  readonly code: number;
  readonly signal: NodeJS.Signals | null;
}

export interface JobProcessOptions {
  readonly jobPath: string;
  readonly natsUrl: string;
  readonly overrides: JobOverrides;
  readonly cwd?: string;
  readonly weirBin?: string;
  /** Receives every stderr line as it arrives (verbose mode). */
  readonly onLine?: (line: string) => void;
}

/** The `weir run` flags that set each override. */
export function runArgs(o: JobProcessOptions): string[] {
  const args = ["run", o.jobPath, "--nats", o.natsUrl, "--quiet"];
  const { parallelism, stateBackend, mode, checkpointIntervalMs, restore, manualClock } = o.overrides;
  if (parallelism !== undefined) args.push("--parallelism", String(parallelism));
  if (stateBackend !== undefined) args.push("--state-backend", stateBackend);
  if (mode !== undefined) args.push("--mode", mode);
  if (checkpointIntervalMs !== undefined) args.push("--checkpoint-interval", String(checkpointIntervalMs));
  if (restore !== undefined) args.push("--restore", String(restore));
  if (manualClock !== undefined) args.push("--manual-clock", String(manualClock));
  return args;
}

export class JobProcess {
  readonly child: ChildProcess;
  readonly args: readonly string[];
  private err = "";
  /** Characters of stderr dropped from the front (a chatty job): the end, with its `weir:` line, is kept. */
  private dropped = 0;
  private partial = "";
  private result: ProcessExit | undefined;
  /** Resolves when the process has exited and its stderr is read to the end. */
  readonly exited: Promise<ProcessExit>;
  /**
   * A step or expectation looked at how it ended (a kill or stop step, `wait: { exit }`, an `exit` or
   * `failure` expectation): a failure it did not look at fails the scenario.
   */
  judged = false;

  constructor(options: JobProcessOptions) {
    this.args = runArgs(options);
    const env: NodeJS.ProcessEnv = { ...process.env, FORCE_COLOR: "0", NO_COLOR: "1" };
    // The scenario's own server, not the one (or the credentials) the developer's shell points at.
    for (const name of NATS_ENV_VARS) delete env[name];
    this.child = spawn(process.execPath, [options.weirBin ?? WEIR_BIN, ...this.args], {
      cwd: options.cwd ?? process.cwd(),
      env,
      stdio: ["ignore", "ignore", "pipe"],
    });
    this.child.stderr!.setEncoding("utf8");
    this.child.stderr!.on("data", (d: string) => {
      this.err += d;
      if (this.err.length > MAX_STDERR) {
        const keep = this.err.length - MAX_STDERR / 2;
        const nl = this.err.indexOf("\n", keep);
        const from = nl < 0 ? keep : nl + 1;
        this.dropped += from;
        this.err = this.err.slice(from);
      }
      if (options.onLine) {
        const lines = (this.partial + d).split("\n");
        this.partial = lines.pop()!;
        for (const l of lines) options.onLine(l);
      }
    });
    this.exited = new Promise<ProcessExit>((resolve) => {
      const done = (code: number | null, signal: NodeJS.Signals | null) => {
        if (options.onLine && this.partial) options.onLine(this.partial);
        this.result = { code: code ?? 128 + (signal ? (constants.signals[signal] ?? 0) : 0), signal };
        resolve(this.result);
      };
      this.child.on("error", (e) => { this.err += `weir: cannot start the job process: ${e.message}\n`; done(127, null); });
      // "close" (not "exit") so stderr has been read completely.
      this.child.on("close", done);
    });
  }

  get pid(): number | undefined { return this.child.pid; }
  get running(): boolean { return this.result === undefined; }
  get exit(): ProcessExit | undefined { return this.result; }
  get stderr(): string { return this.dropped ? `[... the first ${this.dropped} characters of stderr dropped ...]\n${this.err}` : this.err; }

  /** The line that says why the job failed: the last `weir: ...` line, else the last non-empty one. */
  failureLine(): string {
    const lines = this.err.split("\n").map((l) => l.trim()).filter(Boolean);
    return [...lines].reverse().find((l) => l.startsWith("weir:")) ?? lines[lines.length - 1] ?? "";
  }

  /** "code 1: weir: ..." or "SIGKILL" for messages. */
  describeExit(): string {
    if (!this.result) return "still running";
    if (this.result.signal) return `killed by ${this.result.signal}`;
    const line = this.failureLine();
    return `exit code ${this.result.code}${this.result.code !== 0 && line ? `: ${line}` : ""}`;
  }

  signal(sig: NodeJS.Signals): void {
    if (this.running) this.child.kill(sig);
  }

  /** Waits for the exit up to `ms`; undefined on timeout. */
  async waitExit(ms: number): Promise<ProcessExit | undefined> {
    if (this.result) return this.result;
    let timer: NodeJS.Timeout | undefined;
    const r = await Promise.race([this.exited, new Promise<undefined>((resolve) => { timer = setTimeout(() => resolve(undefined), ms); })]);
    clearTimeout(timer);
    return r;
  }

  /** SIGKILL and wait (cleanup). */
  async kill(): Promise<ProcessExit> {
    this.signal("SIGKILL");
    return this.exited;
  }
}

export function exitMatches(exit: ProcessExit, expected: number | "nonzero" | "any"): boolean {
  if (expected === "any") return true;
  if (expected === "nonzero") return exit.code !== 0;
  return exit.code === expected;
}
