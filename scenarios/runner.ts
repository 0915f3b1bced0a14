// Runs one scenario file: its own nats-server (random port, own store, never the developer's), the
// streams it declares, its steps in order (each with a timeout), then its expectations. The job runs as a
// child process (`weir run`), so kills and restarts are real. `runScenario` never throws: every problem,
// including a bad file, ends up as a failed ScenarioResult with a one-line reason.

import { existsSync, readdirSync, statSync } from "node:fs";
import { join, relative } from "node:path";
import { ErrorCode, WeirError, describeError, messageOf } from "../runtime/errors.ts";
import { connectNats } from "../runtime/nats/connect.ts";
import { launchNatsServer, type NatsServerProcess } from "../runtime/nats/server-process.ts";
import { loadJob } from "../runtime/cli/load-job.ts";
import type { JobStatus } from "../runtime/exec/job-runner.ts";
import { ControlVerb } from "../runtime/exec/control-protocol.ts";
import type { SubtaskStatus } from "../runtime/exec/subtask.ts";
import { compareContains, compareLastPerKey, compareMultiset, compareOrdered } from "./compare.ts";
import { loadScenario, type Expectation, type JobOverrides, type Scenario, type Step, type StepOf, type StreamExpectation, type Wait } from "./format.ts";
import { JobProcess, exitMatches, type ProcessExit } from "./job-process.ts";
import { ScenarioNats, type StoredMessage } from "./nats-io.ts";
import { fillJson, fillString, type TemplateVars } from "./template.ts";

export type ScenarioOutcome = "passed" | "failed" | "xfail" | "xpass";

export interface ScenarioResult {
  readonly file: string;
  readonly name: string;
  /** passed; failed; xfail (failed as its `expectFailure` says it would); xpass (passed despite `expectFailure`). */
  readonly outcome: ScenarioOutcome;
  /** True for passed and xfail: nothing for the user to fix. */
  readonly ok: boolean;
  readonly durationMs: number;
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
}

const POLL_MS = 50;
const SETTLE_MS = 300;
const DEFAULT_EXPECT_TIMEOUT_MS = 5000;

/** A step failed: its message becomes the scenario's reason. */
class StepFailure extends Error {}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** Scenario files in `paths` (files, or folders searched recursively for *.scenario.yaml / .yml), sorted. */
export function findScenarioFiles(paths: readonly string[]): string[] {
  const out: string[] = [];
  const walk = (dir: string) => {
    for (const name of readdirSync(dir).sort()) {
      if (name === "node_modules" || name.startsWith(".")) continue;
      const p = join(dir, name);
      if (statSync(p).isDirectory()) walk(p);
      else if (/\.scenario\.ya?ml$/.test(name)) out.push(p);
    }
  };
  for (const p of paths) {
    if (!existsSync(p)) throw new WeirError(ErrorCode.Scenario, `no such file or folder: ${p}`);
    if (statSync(p).isDirectory()) walk(p);
    else out.push(p);
  }
  return out;
}

export async function runScenario(file: string, options: RunScenarioOptions = {}): Promise<ScenarioResult> {
  const started = Date.now();
  let scenario: Scenario;
  try {
    scenario = loadScenario(file);
  } catch (e) {
    const reason = describeError(e);
    return { file, name: relative(process.cwd(), file) || file, outcome: "failed", ok: false, durationMs: Date.now() - started, reason, failures: [reason], stderr: "" };
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

class ScenarioRun {
  private server: NatsServerProcess | undefined;
  private io: ScenarioNats | undefined;
  private jobName = "";
  private proc: JobProcess | undefined;
  private readonly processes: JobProcess[] = [];
  private readonly background: Array<{ label: string; done: Promise<void> }> = [];
  private closed = false;
  private readonly startedAt = Date.now();
  private readonly log: (line: string) => void;

  constructor(private readonly s: Scenario, private readonly options: RunScenarioOptions) {
    this.log = options.log ?? (() => {});
  }

  stderr(): string {
    return this.processes.map((p, i) => (this.processes.length > 1 ? `--- job process ${i + 1} (${p.describeExit()})\n` : "") + p.stderr).join("");
  }

  /** Runs everything; returns the failures (empty when the scenario passed). */
  async execute(): Promise<string[]> {
    try {
      try {
        const job = await loadJob(this.s.jobPath);
        this.jobName = job.options.name;
      } catch (e) {
        return [`job ${this.s.job}: ${describeError(e)}`];
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
            const p = this.publish(step);
            p.catch(() => {}); // awaited after the last step
            this.background.push({ label, done: p });
          } else {
            await this.guarded(this.runStep(step), step);
          }
        } catch (e) {
          return [`${label}: ${stepFailure(e)}`];
        }
      }
      for (const { label, done } of this.background) {
        try { await done; } catch (e) { return [`${label}: ${stepFailure(e)}`]; }
      }
      const failures: string[] = [];
      for (const [i, exp] of this.s.expect.entries()) {
        const label = `expect[${i}] (${describeExpectation(exp)})`;
        try {
          const problem = await this.check(exp);
          this.log(`  ${label}: ${problem ?? "ok"}`);
          if (problem) failures.push(`${label}: ${problem}`);
        } catch (e) {
          failures.push(`${label}: ${describeError(e)}`);
        }
      }
      return failures;
    } catch (e) {
      return [describeError(e)];
    } finally {
      await this.cleanup();
    }
  }

  private async cleanup(): Promise<void> {
    this.closed = true;
    for (const p of this.processes) if (p.running) await p.kill();
    if (this.io) await this.io.nc.close().catch(() => {});
    if (this.server) await this.server.stop().catch(() => {});
  }

  private get nats(): ScenarioNats {
    if (!this.io) throw new Error("not connected");
    return this.io;
  }

  // ------------------------------------------------------------------ steps

  private timeoutOf(step: { timeoutMs?: number }): number {
    return step.timeoutMs ?? this.s.timeoutMs;
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
    let timer: NodeJS.Timeout | undefined;
    try {
      await Promise.race([p, new Promise<never>((_, reject) => { timer = setTimeout(() => reject(new StepFailure(`did not finish within ${limit} ms`)), limit); })]);
    } finally {
      clearTimeout(timer);
    }
  }

  private async runStep(step: Step): Promise<void> {
    switch (step.kind) {
      case "publish": return this.publish(step);
      case "start": return this.start(step.body.options ?? {}, this.timeoutOf(step));
      case "wait": return this.wait(step.body, step.body.timeoutMs ?? this.timeoutOf(step));
      case "sleep": return sleep(step.body);
      case "kill": return this.kill(step, this.timeoutOf(step));
      case "restart": {
        const timeout = this.timeoutOf(step);
        if (this.proc?.running) await this.stopProcess("signal", false, 0, timeout);
        return this.start(step.body === "process" ? {} : step.body.options ?? {}, timeout);
      }
      case "stop": return this.stopProcess(step.body.via ?? "signal", step.body.savepoint ?? false, step.body.exit ?? 0, this.timeoutOf(step));
    }
  }

  private async publish(step: StepOf<"publish">): Promise<void> {
    const p = step.body;
    const n = p.count ?? 1;
    const interval = p.intervalMs ?? 0;
    const deadline = Date.now() + this.timeoutOf(step) + n * interval;
    let via = p.via ?? "auto";
    const inflight: Promise<unknown>[] = [];
    const send = async (subject: string, payload: string) => {
      if (via === "core") { this.nats.nc.publish(subject, payload); return; }
      const ack = this.nats.js.publish(subject, payload).catch((e: unknown) => {
        throw new StepFailure(`JetStream publish to ${subject} failed: ${/no responders|503/i.test(messageOf(e)) ? "no stream captures this subject" : messageOf(e)}`);
      });
      if (via === "auto") {
        // The first message decides: a subject no stream captures is published on core NATS.
        try { await ack; via = "jetstream"; } catch (e) {
          if (!/no stream captures/.test(messageOf(e))) throw e;
          via = "core";
          this.nats.nc.publish(subject, payload);
        }
        return;
      }
      ack.catch(() => {}); // awaited below; this keeps an early rejection from counting as unhandled
      inflight.push(ack);
      if (inflight.length >= 256) await Promise.all(inflight.splice(0));
    };
    for (let i = 0; i < n; i++) {
      if (this.closed) return;
      if (Date.now() > deadline) throw new StepFailure(`timed out after publishing ${i} of ${n} messages`);
      const vars: TemplateVars = { i, n, line: 0, now: Date.now(), start: this.startedAt };
      const subject = fillString(p.subject, vars);
      if (p.data !== undefined) await send(subject, fillString(p.data, vars));
      else if (p.json !== undefined) await send(subject, JSON.stringify(fillJson(p.json, vars)));
      else for (const [line, text] of p.lines!.entries()) await send(subject, fillString(text, { ...vars, line }));
      if (interval > 0 && i < n - 1) {
        await Promise.all(inflight.splice(0));
        await sleep(interval);
      }
    }
    await Promise.all(inflight.splice(0));
    await this.nats.nc.flush();
  }

  private async start(overrides: JobOverrides, timeoutMs: number): Promise<void> {
    if (this.proc?.running) throw new StepFailure(`the job is already running (pid ${this.proc.pid}); stop or kill it first`);
    const proc = new JobProcess({
      jobPath: this.s.jobPath,
      natsUrl: this.server!.url,
      overrides: { ...this.s.options, ...overrides },
      ...(this.options.cwd ? { cwd: this.options.cwd } : {}),
      ...(this.options.weirBin ? { weirBin: this.options.weirBin } : {}),
      ...(this.options.log ? { onLine: (l: string) => { if (l.trim()) this.options.log!(`    [job] ${l}`); } } : {}),
    });
    this.proc = proc;
    this.processes.push(proc);
    this.log(`    weir ${proc.args.join(" ")} (pid ${proc.pid})`);
    // Started means: the job answers its status subject and has deployed its subtasks, or the process
    // already ended (a bounded job may finish at once; a failure is judged by later steps and expectations).
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      if (!proc.running) return;
      const status = await this.nats.status(this.jobName).catch(() => undefined);
      if (status && status.state !== "created" && status.state !== "deploying") return;
      if (Date.now() > deadline) throw new StepFailure(`the job did not come up within ${timeoutMs} ms (${status ? `state ${status.state}` : "no answer on its status subject"})`);
      await sleep(POLL_MS);
    }
  }

  private async kill(step: StepOf<"kill">, timeoutMs: number): Promise<void> {
    if (step.body === "process") {
      const proc = this.requireRunning("kill the process");
      proc.signal("SIGKILL");
      if (!(await proc.waitExit(timeoutMs))) throw new StepFailure(`the process did not die within ${timeoutMs} ms of SIGKILL`);
      return;
    }
    const subtask = step.body.subtask;
    this.requireRunning(`kill subtask ${subtask}`);
    const answer = await this.nats.control(this.jobName, ControlVerb.FailSubtask, { subtask }, timeoutMs);
    if (!answer) throw new StepFailure(`the job did not answer the fail-subtask request (${this.proc!.describeExit()})`);
    if (!answer.ok) {
      const status = await this.nats.status(this.jobName);
      const known = status ? subtaskNames(status).join(", ") : "unknown";
      throw new StepFailure(`no subtask "${subtask}"${answer.error ? ` (${answer.error})` : ""}; subtasks: ${known}`);
    }
  }

  private async stopProcess(via: "signal" | "control", savepoint: boolean, exit: number | "nonzero" | "any", timeoutMs: number): Promise<void> {
    const proc = this.requireRunning("stop the job");
    if (via === "signal") {
      if (savepoint) throw new StepFailure("a savepoint needs via: control (the stop request); SIGTERM stops without one");
      proc.signal("SIGTERM");
    } else {
      const answer = await this.nats.control(this.jobName, ControlVerb.Stop, { savepoint }, timeoutMs);
      if (!answer && proc.running) throw new StepFailure("the job did not answer the stop request");
    }
    const result = await proc.waitExit(timeoutMs);
    if (!result) {
      await proc.kill();
      throw new StepFailure(`the job did not stop within ${timeoutMs} ms (killed it)`);
    }
    if (!exitMatches(result, exit)) throw new StepFailure(`the job stopped with ${proc.describeExit()}, expected exit ${exit}`);
  }

  private requireRunning(what: string): JobProcess {
    if (!this.proc) throw new StepFailure(`cannot ${what}: no job process was started`);
    if (!this.proc.running) throw new StepFailure(`cannot ${what}: the job process already ended (${this.proc.describeExit()})`);
    return this.proc;
  }

  // ------------------------------------------------------------------ waits

  private async wait(w: Wait, timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    const cond = this.condition(w);
    let baseline: number | undefined;
    for (;;) {
      const alive = this.proc?.running ?? false;
      const r = await cond(baseline, (b) => { baseline = b; });
      if (r.done) return;
      if (!alive && w.kind !== "exit") {
        // Nothing more will come: fail now rather than at the timeout.
        throw new StepFailure(this.proc
          ? `the job process ended (${this.proc.describeExit()}) before this happened: ${r.detail}`
          : `no job process is running: ${r.detail}`);
      }
      if (Date.now() > deadline) throw new StepFailure(`timed out after ${timeoutMs} ms: ${r.detail}`);
      await sleep(POLL_MS);
    }
  }

  /** A poll function for a wait: done, or a description of where things stand. */
  private condition(w: Wait): (baseline: number | undefined, setBaseline: (b: number) => void) => Promise<{ done: boolean; detail: string }> {
    const io = this.nats;
    switch (w.kind) {
      case "output": {
        const { stream, count, subject } = w.body;
        return async () => {
          const n = await io.count(stream, subject);
          const where = subject ? `${stream} (${subject})` : stream;
          return { done: (n ?? 0) >= count, detail: n === undefined ? `stream ${stream} does not exist` : `${where} has ${n} of ${count} messages` };
        };
      }
      case "dlq": {
        const stream = dlqStream(this.jobName);
        return async () => {
          const n = (await io.count(stream)) ?? 0;
          return { done: n >= w.body.count, detail: `${n} of ${w.body.count} dead letters in ${stream}` };
        };
      }
      case "exit": {
        const expected = w.body;
        return async () => {
          const proc = this.proc;
          if (!proc) throw new StepFailure("no job process was started");
          if (proc.running) return { done: false, detail: "the job is still running" };
          if (exitMatches(proc.exit!, expected)) return { done: true, detail: "" };
          throw new StepFailure(`the job ended with ${proc.describeExit()}, expected exit ${expected}`);
        };
      }
      case "recordsIn": {
        return async () => {
          const s = await io.status(this.jobName);
          return { done: (s?.recordsIn ?? 0) >= w.body, detail: s ? `the job read ${s.recordsIn} of ${w.body} records` : "the job does not answer" };
        };
      }
      case "watermark": {
        const { operator, atLeast, subtask } = w.body;
        return async () => {
          const s = await io.status(this.jobName);
          if (!s) return { done: false, detail: "the job does not answer" };
          const subs = this.matchSubtasks(s, operator, subtask);
          const marks = subs.map((t) => `${t.name}#${t.index}: ${t.watermark ?? "none"}`).join(", ");
          return { done: subs.length > 0 && subs.every((t) => t.watermark !== null && t.watermark >= atLeast), detail: `watermarks ${marks}; waiting for ${atLeast}` };
        };
      }
      case "state": {
        const { operator, subtask, is } = w.body;
        return async () => {
          const s = await io.status(this.jobName);
          if (!s) return { done: false, detail: "the job does not answer" };
          const subs = operator === undefined ? s.subtasks.filter((t) => subtask === undefined || t.index === subtask) : this.matchSubtasks(s, operator, subtask);
          const states = subs.map((t) => `${t.name}#${t.index}: ${t.state}`).join(", ");
          return { done: subs.length > 0 && subs.every((t) => stateMatches(t.state, is)), detail: `states ${states || "(no subtasks)"}; waiting for ${is}` };
        };
      }
      case "checkpoint": {
        const more = w.body;
        return async (baseline, setBaseline) => {
          const s = await io.status(this.jobName);
          if (!s) return { done: false, detail: "the job does not answer" };
          const n = completedCheckpoints(s);
          if (n === undefined) {
            throw new StepFailure("the job's status reports no checkpoints (no checkpoints.completed): this build has no checkpointing yet (issue 5), or the job takes none (checkpointIntervalMs 0)");
          }
          if (baseline === undefined) { setBaseline(n); baseline = n; }
          return { done: n - baseline >= more, detail: `${n - baseline} of ${more} checkpoints completed since the step began (${n} in all)` };
        };
      }
    }
  }

  /** Subtasks of `operator` (a name or uid in the chain); an unknown name fails at once, listing the known ones. */
  private matchSubtasks(s: JobStatus, operator: string, index: number | undefined): SubtaskStatus[] {
    const subs = s.subtasks.filter((t) => operatorMatches(t, operator) && (index === undefined || t.index === index));
    if (subs.length === 0 && s.state === "running") {
      throw new StepFailure(`no operator "${operator}"${index !== undefined ? ` with subtask ${index}` : ""}; subtasks: ${subtaskNames(s).join(", ")}`);
    }
    return subs;
  }

  // ------------------------------------------------------------------ expectations

  private async check(e: Expectation): Promise<string | undefined> {
    switch (e.kind) {
      case "stream": return this.checkStream(e.body);
      case "dlq": {
        const stream = dlqStream(this.jobName);
        const letters = await this.settledRead(stream, undefined, e.body.count ?? 0, this.options.expectTimeoutMs ?? DEFAULT_EXPECT_TIMEOUT_MS);
        const problems: string[] = [];
        if (e.body.count !== undefined && letters.length !== e.body.count) {
          problems.push(`${letters.length} dead letters, expected ${e.body.count}${letters.length ? ` (reasons: ${summarizeReasons(letters)})` : ""}`);
        }
        if (e.body.reasonMatches !== undefined) {
          const patterns = (Array.isArray(e.body.reasonMatches) ? e.body.reasonMatches : [e.body.reasonMatches]).map((p) => new RegExp(p));
          const reasons = letters.map((l) => String((l.value as { reason?: unknown })?.reason ?? ""));
          const unmatched = reasons.filter((r) => !patterns.some((p) => p.test(r)));
          const unused = patterns.filter((p) => !reasons.some((r) => p.test(r)));
          if (unmatched.length) problems.push(`reason ${JSON.stringify(unmatched[0])} matches none of ${patterns.map(String).join(", ")}`);
          if (unused.length) problems.push(`no dead letter's reason matches ${unused.map(String).join(", ")}${reasons.length ? ` (reasons: ${summarizeReasons(letters)})` : ""}`);
        }
        return problems.length ? problems.join("; ") : undefined;
      }
      case "exit":
      case "failure": {
        const proc = this.proc;
        if (!proc) return "no job process was started";
        const exit = await proc.waitExit(this.s.timeoutMs);
        if (!exit) return `the job was still running after ${this.s.timeoutMs} ms`;
        if (e.kind === "exit") return exitMatches(exit, e.body) ? undefined : `the job ended with ${proc.describeExit()}, expected exit ${e.body}`;
        if (exit.code === 0) return `the job exited 0, expected a failure mentioning ${JSON.stringify(e.body)}`;
        // The reason must be in the one line that says why (the last `weir: ...` line), not just somewhere in the log.
        const line = proc.failureLine();
        if (!line.includes(e.body)) {
          const elsewhere = proc.stderr.includes(e.body) ? " (it appears elsewhere in stderr, not in the failure line)" : "";
          return `the job failed (exit code ${exit.code}) with ${JSON.stringify(line)}, which does not mention ${JSON.stringify(e.body)}${elsewhere}`;
        }
        return undefined;
      }
    }
  }

  private async checkStream(e: StreamExpectation): Promise<string | undefined> {
    const want = e.count ?? e.records?.length ?? e.contains?.length ?? 0;
    const messages = await this.settledRead(e.stream, e.subject, want, e.timeoutMs ?? this.options.expectTimeoutMs ?? DEFAULT_EXPECT_TIMEOUT_MS);
    const where = e.subject ? `${e.stream} (${e.subject})` : e.stream;
    if (messages.length === 0 && (await this.nats.count(e.stream)) === undefined && want > 0) return `stream ${e.stream} does not exist`;
    const values = messages.map((m) => m.value);
    const problems: string[] = [];
    if (e.count !== undefined && values.length !== e.count) problems.push(`${where} has ${values.length} messages, expected ${e.count}`);
    if (e.records !== undefined) {
      const p = e.ordered ? compareOrdered(values, e.records)
        : e.lastPerKey ? compareLastPerKey(values, e.records, e.lastPerKey)
        : compareMultiset(values, e.records);
      if (p) problems.push(p);
    }
    if (e.contains !== undefined) {
      const p = compareContains(values, e.contains);
      if (p) problems.push(p);
    }
    return problems.length ? problems.join("; ") : undefined;
  }

  /**
   * The stream's messages once it holds at least `want` and its count has not changed for a moment (or
   * the timeout passed): a job still running may be writing the last records.
   */
  private async settledRead(stream: string, subject: string | undefined, want: number, timeoutMs: number): Promise<StoredMessage[]> {
    const deadline = Date.now() + timeoutMs;
    let last = -1;
    let stableSince = Date.now();
    for (;;) {
      const n = (await this.nats.count(stream, subject)) ?? 0;
      if (n !== last) { last = n; stableSince = Date.now(); }
      const running = this.proc?.running ?? false;
      const settled = !running || Date.now() - stableSince >= SETTLE_MS;
      if ((n >= want && settled) || Date.now() > deadline) break;
      if (!running && n < want) break;
      await sleep(POLL_MS);
    }
    return this.nats.read(stream, subject);
  }
}

// ------------------------------------------------------------------ helpers

function stepFailure(e: unknown): string {
  return e instanceof StepFailure ? e.message : describeError(e);
}

export function dlqStream(job: string): string {
  return `weir_${job}_dlq`;
}

function operatorMatches(t: SubtaskStatus, operator: string): boolean {
  const uid = t.id.slice(0, t.id.lastIndexOf("#"));
  return uid === operator || t.name === operator || t.name.split(" -> ").includes(operator) || operator in (t.operators ?? {});
}

function subtaskNames(s: JobStatus): string[] {
  return s.subtasks.map((t) => `${t.name}#${t.index} (uid ${t.id.slice(0, t.id.lastIndexOf("#"))})`);
}

/** "running.streaming" matches itself and "running.streaming+snapshotting"; "running" matches any running state. */
function stateMatches(actual: string, wanted: string): boolean {
  return actual === wanted || actual.startsWith(`${wanted}.`) || actual.startsWith(`${wanted}+`);
}

/**
 * Checkpoints completed, from the job's status: `checkpoints.completed` (the contract this runner reads),
 * or the id of `lastCheckpoint`. Undefined when the status has neither.
 */
function completedCheckpoints(s: JobStatus): number | undefined {
  const x = s as unknown as { checkpoints?: { completed?: unknown }; lastCheckpoint?: unknown };
  if (typeof x.checkpoints?.completed === "number") return x.checkpoints.completed;
  if (typeof x.lastCheckpoint === "number") return x.lastCheckpoint;
  const id = (x.lastCheckpoint as { id?: unknown } | undefined)?.id;
  return typeof id === "number" ? id : undefined;
}

function summarizeReasons(letters: readonly StoredMessage[]): string {
  const reasons = [...new Set(letters.map((l) => String((l.value as { reason?: unknown })?.reason ?? "?")))];
  return reasons.slice(0, 3).map((r) => JSON.stringify(r.length > 80 ? `${r.slice(0, 77)}...` : r)).join(", ") + (reasons.length > 3 ? ", ..." : "");
}

export function describeStep(step: Step): string {
  switch (step.kind) {
    case "publish": {
      const p = step.body;
      const what = p.lines ? `${p.lines.length} lines` : p.json !== undefined ? "json" : "text";
      return `publish ${what} to ${p.subject}${p.count && p.count > 1 ? ` ×${p.count}` : ""}${p.intervalMs ? ` every ${p.intervalMs} ms` : ""}${p.background ? " in the background" : ""}`;
    }
    case "start": return "start";
    case "sleep": return `sleep ${step.body} ms`;
    case "kill": return step.body === "process" ? "kill process" : `kill subtask ${step.body.subtask}`;
    case "restart": return "restart process";
    case "stop": return `stop${step.body.via === "control" ? " via control" : ""}${step.body.savepoint ? " with savepoint" : ""}`;
    case "wait": {
      const w = step.body;
      switch (w.kind) {
        case "output": return `wait output ${w.body.stream}${w.body.subject ? ` (${w.body.subject})` : ""} ≥ ${w.body.count}`;
        case "watermark": return `wait watermark ${w.body.operator} ≥ ${w.body.atLeast}`;
        case "state": return `wait state ${w.body.operator ?? "all"} is ${w.body.is}`;
        case "checkpoint": return `wait ${w.body} checkpoint(s)`;
        case "exit": return `wait exit ${w.body}`;
        case "dlq": return `wait dlq ≥ ${w.body.count}`;
        case "recordsIn": return `wait recordsIn ≥ ${w.body}`;
      }
    }
  }
}

function describeExpectation(e: Expectation): string {
  switch (e.kind) {
    case "stream": return `stream ${e.body.stream}${e.body.subject ? ` (${e.body.subject})` : ""}`;
    case "dlq": return "dlq";
    case "exit": return `exit ${e.body}`;
    case "failure": return "failure";
  }
}

export type { ProcessExit };
