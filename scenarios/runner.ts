// Runs one scenario file: its own nats-server (random port, own store, never the developer's), the
// streams it declares, its steps in order (each with a timeout), then its expectations. The job runs as a
// child process (`weir run`), so kills and restarts are real. `runScenario` never throws: every problem,
// including a bad file, ends up as a failed ScenarioResult with a one-line reason.

import { describeError, messageOf } from "../runtime/core/errors.ts";
import { connectNats } from "../runtime/nats/connect.ts";
import { launchNatsServer, type NatsServerProcess } from "../runtime/nats/server-process.ts";
import { loadJob } from "../runtime/cli/load-job.ts";
import { describeExpectation, describeStep } from "./describe.ts";
import { checkExpectation } from "./expectations.ts";
import { MAIN_WORKER, loadScenario, type Scenario, type Step, type StepOf, type Wait } from "./format.ts";
import { ControlVerb } from "../actors/job/control-protocol.ts";
import { advanceJobClock } from "../actors/job/control-client.ts";
import type { JobProcess, ProcessExit } from "./job-process.ts";
import { ScenarioNats } from "./nats-io.ts";
import { DEFAULT_EXPECT_TIMEOUT_MS, POLL_MS, StepFailure, sleep, stepFailure, type ScenarioState } from "./run-state.ts";
import { subtaskNames, waitCondition } from "./waits.ts";
import { TemplateFiller, type TemplateVars } from "./template.ts";
import { WorkerSet } from "./worker-steps.ts";
import { shownPath } from "./find-files.ts";

export type ScenarioOutcome = "passed" | "failed" | "xfail" | "xpass";

export interface ScenarioResult {
  readonly file: string;
  readonly name: string;
  /** passed; failed; xfail (failed as its `expectFailure` says it would); xpass (passed despite `expectFailure`). */
  readonly outcome: ScenarioOutcome;
  /** True for passed and xfail: nothing for the user to fix. */
  readonly ok: boolean;
  readonly durationMs: number;
  /** The file did not load (a bad file): `name` is then its path. */
  readonly notLoaded?: boolean;
  /** The first failure (one line), or for xpass why that is an error. */
  readonly reason?: string;
  /** Every failure: the failing step, or each failed expectation. */
  readonly failures: readonly string[];
  readonly expectFailure?: string;
  /** stderr of every job process run, in order (for debugging a failure). */
  readonly stderr: string;
}

export interface RunScenarioOptions {
  /** Progress lines (each step, the job's stderr): verbose mode. */
  readonly log?: (line: string) => void;
  /** Working directory of the job processes (default: the current one). */
  readonly cwd?: string;
  /** The `weir` executable script (default: this package's bin/weir.mjs). */
  readonly weirBin?: string;
  /** Time allowed for the expectations of a stream to settle (default 5000 ms, or the expectation's timeoutMs). */
  readonly expectTimeoutMs?: number;
  /** Aborted (SIGINT/SIGTERM to `weir scenario`): the step running fails with the reason, and everything is cleaned up. */
  readonly signal?: AbortSignal;
}

export async function runScenario(file: string, options: RunScenarioOptions = {}): Promise<ScenarioResult> {
  const started = Date.now();
  let scenario: Scenario;
  try {
    scenario = loadScenario(file);
  } catch (e) {
    const reason = describeError(e);
    return { file, name: shownPath(file), notLoaded: true, outcome: "failed", ok: false, durationMs: Date.now() - started, reason, failures: [reason], stderr: "" };
  }
  const run = new ScenarioRun(scenario, options);
  const failures = await run.execute();
  const failed = failures.length > 0;
  const durationMs = Date.now() - started;
  const base = { file, name: scenario.name, durationMs, failures, stderr: run.stderr(), ...(scenario.expectFailure ? { expectFailure: scenario.expectFailure } : {}) };
  if (scenario.expectFailure) {
    return failed
      ? { ...base, outcome: "xfail", ok: true, reason: failures[0]! }
      : { ...base, outcome: "xpass", ok: false, reason: `passed, but is marked expectFailure ("${scenario.expectFailure}"): remove the mark` };
  }
  return failed ? { ...base, outcome: "failed", ok: false, reason: failures[0]! } : { ...base, outcome: "passed", ok: true };
}

class ScenarioRun implements ScenarioState {
  private server: NatsServerProcess | undefined;
  private io: ScenarioNats | undefined;
  jobName = "";
  private readonly workers: WorkerSet;
  private readonly background: Array<{ label: string; done: Promise<void>; settled: boolean }> = [];
  /** Rejects when the run is aborted (options.signal); raced against every step. */
  private readonly interrupted: Promise<never>;
  private closed = false;
  /** Takes the abort listener off options.signal, which outlives this run (one signal for all of `weir scenario`'s files). */
  private stopListening = (): void => {};
  private readonly startedAt = Date.now();
  private readonly log: (line: string) => void;

  constructor(readonly s: Scenario, private readonly options: RunScenarioOptions) {
    this.log = options.log ?? (() => {});
    this.interrupted = new Promise<never>((_, reject) => {
      const signal = options.signal;
      const abort = () => reject(new StepFailure(`interrupted (${String(signal!.reason ?? "aborted")})`));
      if (signal?.aborted) abort();
      else if (signal) {
        signal.addEventListener("abort", abort, { once: true });
        this.stopListening = () => signal.removeEventListener("abort", abort);
      }
    });
    this.interrupted.catch(() => {});
    const onLine = options.log ? (l: string) => { if (l.trim()) options.log!(`    [job] ${l}`); } : undefined;
    const run = this; // eslint-disable-line @typescript-eslint/no-this-alias -- the getters read the run's current connection
    this.workers = new WorkerSet({
      s,
      get nats() { return run.nats; },
      get jobName() { return run.jobName; },
      get natsUrl() { return run.server!.url; },
      processOptions: { ...(options.cwd ? { cwd: options.cwd } : {}), ...(options.weirBin ? { weirBin: options.weirBin } : {}), ...(onLine ? { onLine } : {}) },
      log: (line) => this.log(line),
    });
  }

  /** The latest process of the worker "main" (the job process started without a name). */
  get proc(): JobProcess | undefined { return this.workers.main; }

  /** Whether any job process (worker) is still running. */
  get running(): boolean { return this.workers.anyRunning(); }

  stderr(): string {
    const processes = this.workers.processes;
    return processes.map((p, i) => (processes.length > 1 ? `--- job process ${i + 1} (${p.describeExit()})\n` : "") + p.stderr).join("");
  }

  /** Runs everything; returns the failures (empty when the scenario passed). */
  async execute(): Promise<string[]> {
    try {
      try {
        // In this process: a module that never finishes loading would hang the run (or end it, once nothing else waits).
        const job = await this.within(loadJob(this.s.jobPath), this.s.startTimeoutMs, `did not load within ${this.s.startTimeoutMs} ms`);
        this.jobName = job.options.name;
      } catch (e) {
        return [`job ${this.s.job}: ${e instanceof StepFailure ? e.message : describeError(e)}`];
      }
      this.server = await launchNatsServer();
      this.io = new ScenarioNats(await connectNats(this.server.url, "weir-scenario"));
      this.log(`${this.s.name}: nats-server at ${this.server.url}, job "${this.jobName}"`);
      for (const st of this.s.streams ?? []) {
        try {
          await this.io.addStream(st.name, st.subjects, st.duplicateWindowMs);
        } catch (e) {
          return [`streams: cannot create ${st.name} (${st.subjects.join(", ")}): ${messageOf(e)}`];
        }
      }
      for (const [i, step] of this.s.steps.entries()) {
        const label = `step ${i + 1} (${step.name ?? describeStep(step)})`;
        this.log(`  ${label}`);
        try {
          if (step.kind === "publish" && step.body.background) {
            const entry = { label, done: this.publish(step), settled: false };
            entry.done.catch(() => {}).finally(() => { entry.settled = true; }); // awaited after the last step
            this.background.push(entry);
          } else {
            await this.guarded(this.runStep(step), step);
          }
        } catch (e) {
          return [`${label}: ${stepFailure(e)}`];
        }
      }
      for (const { label, done } of this.background) {
        try { await Promise.race([done, this.interrupted]); } catch (e) { return [`${label}: ${stepFailure(e)}`]; }
      }
      const failures: string[] = [];
      for (const [i, exp] of this.s.expect.entries()) {
        const label = `expect[${i}] (${describeExpectation(exp)})`;
        try {
          const problem = await Promise.race([checkExpectation(this, exp), this.interrupted]);
          this.log(`  ${label}: ${problem ?? "ok"}`);
          if (problem) failures.push(`${label}: ${problem}`);
        } catch (e) {
          failures.push(`${label}: ${stepFailure(e)}`);
          // Interrupted: one line says so; the expectations after it would each only repeat it.
          if (this.options.signal?.aborted) break;
        }
      }
      if (!this.options.signal?.aborted) failures.push(...this.workers.unexpectedFailures());
      return failures;
    } catch (e) {
      return [describeError(e)];
    } finally {
      await this.cleanup();
    }
  }

  private async cleanup(): Promise<void> {
    this.closed = true;
    this.stopListening();
    await this.workers.cleanup();
    if (this.io) await this.io.nc.close().catch(() => {});
    if (this.server) await this.server.stop().catch(() => {});
  }

  get expectTimeoutMs(): number {
    return this.options.expectTimeoutMs ?? DEFAULT_EXPECT_TIMEOUT_MS;
  }

  get nats(): ScenarioNats {
    if (!this.io) throw new Error("not connected");
    return this.io;
  }

  // ------------------------------------------------------------------ steps

  private timeoutOf(step: { timeoutMs?: number; kind?: string }): number {
    return step.timeoutMs ?? (step.kind === "start" || step.kind === "restart" ? this.s.startTimeoutMs : this.s.timeoutMs);
  }

  /**
   * Every step watches its own timeout and says where things stand; this outer limit only guarantees
   * that a step stuck somewhere unexpected (a hung request) cannot hang the scenario.
   */
  private async guarded(p: Promise<void>, step: Step): Promise<void> {
    const own = step.kind === "wait" ? step.body.timeoutMs ?? this.timeoutOf(step) : this.timeoutOf(step);
    const publishing = step.kind === "publish" ? (step.body.count ?? 1) * (step.body.intervalMs ?? 0) : 0;
    const sleeping = step.kind === "sleep" ? step.body : 0;
    const limit = 2 * own + publishing + sleeping + 5000;
    await this.within(p, limit, `did not finish within ${limit} ms`);
  }

  /** `p`, unless `ms` pass first or the run is aborted (then a StepFailure). */
  private async within<T>(p: Promise<T>, ms: number, late: string): Promise<T> {
    let timer: NodeJS.Timeout | undefined;
    try {
      return await Promise.race([p, this.interrupted, new Promise<never>((_, reject) => { timer = setTimeout(() => reject(new StepFailure(late)), ms); })]);
    } finally {
      clearTimeout(timer);
    }
  }

  private async runStep(step: Step): Promise<void> {
    switch (step.kind) {
      case "publish": return this.publish(step);
      case "start": {
        const { worker, options } = step.body;
        return worker === undefined
          ? this.workers.startJob(options ?? {}, this.timeoutOf(step))
          : this.workers.startWorker(worker, options ?? {}, this.timeoutOf(step));
      }
      case "wait": return this.wait(step.body, step.body.timeoutMs ?? this.timeoutOf(step));
      case "sleep": return sleep(step.body);
      case "advanceClock": {
        // The leader moves its clock and the other workers' (each process keeps one) before it answers.
        await advanceJobClock(this.nats.nc, this.jobName, step.body);
        return;
      }
      case "kill": return this.kill(step, this.timeoutOf(step));
      case "pause": return this.workers.pause(step.body.worker);
      case "resume": return this.workers.resume(step.body.worker);
      case "restart": {
        const timeout = this.timeoutOf(step);
        if (step.body !== "process" && step.body.worker !== undefined) return this.workers.restart(step.body.worker, step.body.options, timeout);
        if (this.proc?.running) await this.workers.stopJob("signal", false, 0, timeout);
        // With the options it was started with, unless the step gives others (as a named worker's restart).
        return this.workers.startJob((step.body === "process" ? undefined : step.body.options) ?? this.workers.overridesOf(MAIN_WORKER), timeout);
      }
      case "stop": {
        const b = step.body;
        if (b.worker !== undefined) return this.workers.stopWorker(b.worker, b.exit ?? 0, this.timeoutOf(step));
        return this.workers.stopJob(b.via ?? "signal", b.savepoint ?? false, b.exit ?? 0, this.timeoutOf(step));
      }
    }
  }

  private async publish(step: StepOf<"publish">): Promise<void> {
    const p = step.body;
    const n = p.count ?? 1;
    const interval = p.intervalMs ?? 0;
    const deadline = Date.now() + this.timeoutOf(step) + n * interval;
    let via = p.via ?? "auto";
    const inflight: Promise<unknown>[] = [];
    const templates = new TemplateFiller();
    let checked = false;
    const send = async (subject: string, payload: string) => {
      if (!checked && via !== "core") {
        // The first message decides, by asking the server which stream captures its subject (a failed
        // publish cannot tell: no stream reads "jetstream is not enabled", a core subscriber a timeout).
        checked = true;
        const captured = (await this.nats.streamFor(subject)) !== undefined;
        if (via === "auto") via = captured ? "jetstream" : "core";
        else if (!captured) throw new StepFailure(`JetStream publish to ${subject} failed: no stream captures this subject`);
      }
      if (via === "core") { this.nats.nc.publish(subject, payload); return; }
      const ack = this.nats.js.publish(subject, payload).catch((e: unknown) => {
        throw new StepFailure(`JetStream publish to ${subject} failed: ${messageOf(e)}`);
      });
      ack.catch(() => {}); // awaited below; this keeps an early rejection from counting as unhandled
      inflight.push(ack);
      if (inflight.length >= 256) await Promise.all(inflight.splice(0));
    };
    for (let i = 0; i < n; i++) {
      if (this.closed) return;
      if (Date.now() > deadline) throw new StepFailure(`timed out after publishing ${i} of ${n} messages`);
      const vars: TemplateVars = { i, n, line: 0, now: Date.now(), start: this.startedAt };
      const subject = templates.fillString(p.subject, vars);
      if (p.data !== undefined) await send(subject, templates.fillString(p.data, vars));
      else if (p.json !== undefined) await send(subject, JSON.stringify(templates.fillJson(p.json, vars)));
      else for (const [line, text] of p.lines!.entries()) await send(subject, templates.fillString(text, { ...vars, line }));
      if (interval > 0 && i < n - 1) {
        await Promise.all(inflight.splice(0));
        await sleep(interval);
      }
    }
    await Promise.all(inflight.splice(0));
    await this.nats.nc.flush();
  }

  private async kill(step: StepOf<"kill">, timeoutMs: number): Promise<void> {
    if (step.body === "process" || step.body.worker !== undefined) {
      return this.workers.kill(step.body === "process" ? MAIN_WORKER : step.body.worker!, timeoutMs);
    }
    const subtask = step.body.subtask!;
    if (!this.running) this.workers.require(MAIN_WORKER, `kill subtask ${subtask}`);
    const answer = await this.nats.control(this.jobName, ControlVerb.FailSubtask, { subtask }, timeoutMs);
    if (!answer) throw new StepFailure(`the job did not answer the fail-subtask request (${this.proc?.describeExit() ?? "no job process"})`);
    if (!answer.ok) {
      const status = await this.nats.status(this.jobName);
      const known = status ? subtaskNames(status).join(", ") : "unknown";
      throw new StepFailure(`no subtask "${subtask}"${answer.error ? ` (${answer.error})` : ""}; subtasks: ${known}`);
    }
  }

  // ------------------------------------------------------------------ waits

  private async wait(w: Wait, timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    const cond = waitCondition(this, w);
    let baseline: number | undefined;
    for (;;) {
      // Taken before the condition is read: what ended after the read may still have made it true.
      const alive = this.running || this.background.some((b) => !b.settled);
      const r = await cond(baseline, (b) => { baseline = b; });
      if (r.done) return;
      if (!alive && w.kind !== "exit") {
        // Nothing more will come (no job, no publish still running): fail now rather than at the timeout.
        throw new StepFailure(this.proc
          ? `the job process ended (${this.proc.describeExit()}) before this happened: ${r.detail}`
          : `no job process is running: ${r.detail}`);
      }
      if (Date.now() > deadline) throw new StepFailure(`timed out after ${timeoutMs} ms: ${r.detail}`);
      await sleep(POLL_MS);
    }
  }

  // ------------------------------------------------------------------ expectations

}

export { describeStep, dlqStream } from "./describe.ts";
export { findScenarioFiles, shownPath } from "./find-files.ts";
export type { ProcessExit };
