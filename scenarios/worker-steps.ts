// The job's worker processes in a scenario, by name: every `weir run` of the same job on the scenario's
// server is a worker of that one job, so steps can start more of them, kill (SIGKILL), pause (SIGSTOP),
// resume (SIGCONT), restart and stop (SIGTERM: the worker leaves) one by name. The process a scenario
// starts without a name is the worker "main", so single-process scenarios read as before.

import type { JobStatus } from "../actors/job/job-status.ts";
import { ControlVerb } from "../actors/job/control-protocol.ts";
import { MAIN_WORKER, type ExitMatcher, type JobOverrides, type Scenario } from "./format.ts";
import { JobProcess, exitMatches, type JobProcessOptions } from "./job-process.ts";
import type { ScenarioNats } from "./nats-io.ts";
import { POLL_MS, StepFailure, sleep } from "./run-state.ts";

/** What the worker steps need from the running scenario. */
export interface WorkerContext {
  readonly s: Scenario;
  readonly nats: ScenarioNats;
  readonly jobName: string;
  readonly natsUrl: string;
  /** cwd, weirBin and onLine of every process. */
  readonly processOptions: Pick<JobProcessOptions, "cwd" | "weirBin" | "onLine">;
  log(line: string): void;
}

interface Worker {
  readonly proc: JobProcess;
  readonly overrides: JobOverrides;
  paused: boolean;
  /** A kill or stop step ended it: that step judged its end, a later `stop` of the job does not again. */
  endedByStep: boolean;
}

export class WorkerSet {
  private readonly byName = new Map<string, Worker>();
  /** Every process started, in order (their stderr is the scenario's). */
  readonly processes: JobProcess[] = [];
  private readonly nameOf = new Map<JobProcess, string>();

  constructor(private readonly ctx: WorkerContext) {}

  /** The latest process of the worker "main" (the unnamed job process). */
  get main(): JobProcess | undefined { return this.byName.get(MAIN_WORKER)?.proc; }

  /** Whether any worker process is still running (paused ones included): more may yet happen. */
  anyRunning(): boolean { return [...this.byName.values()].some((w) => w.proc.running); }

  private running(): Array<[string, Worker]> { return [...this.byName].filter(([, w]) => w.proc.running); }

  private launch(name: string, overrides: JobOverrides): JobProcess {
    const current = this.byName.get(name);
    if (current?.proc.running) {
      throw new StepFailure(name === MAIN_WORKER && this.byName.size === 1
        ? `the job is already running (pid ${current.proc.pid}); stop or kill it first`
        : `worker ${name} is already running (pid ${current.proc.pid}); stop or kill it first`);
    }
    const o = this.ctx.processOptions;
    const proc = new JobProcess({
      jobPath: this.ctx.s.jobPath,
      natsUrl: this.ctx.natsUrl,
      overrides: { ...this.ctx.s.options, ...overrides },
      ...(o.cwd ? { cwd: o.cwd } : {}),
      ...(o.weirBin ? { weirBin: o.weirBin } : {}),
      ...(o.onLine ? { onLine: name === MAIN_WORKER ? o.onLine : (l: string) => o.onLine!(`[${name}] ${l}`) } : {}),
    });
    this.byName.set(name, { proc, overrides, paused: false, endedByStep: false });
    this.processes.push(proc);
    this.nameOf.set(proc, name);
    this.ctx.log(`    ${name === MAIN_WORKER ? "" : `worker ${name}: `}weir ${proc.args.join(" ")} (pid ${proc.pid})`);
    return proc;
  }

  /**
   * The unnamed job process (the worker "main"). Started means: the job answers its status subject and
   * has deployed its subtasks, or the process already ended (a bounded job may finish at once; a failure
   * is judged by later steps and expectations).
   */
  async startJob(overrides: JobOverrides, timeoutMs: number): Promise<void> {
    const proc = this.launch(MAIN_WORKER, overrides);
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      if (!proc.running) return;
      const status = await this.ctx.nats.status(this.ctx.jobName).catch(() => undefined);
      if (status && status.state !== "created" && status.state !== "deploying") return;
      if (Date.now() > deadline) throw new StepFailure(`the job did not come up within ${timeoutMs} ms (${status ? `state ${status.state}` : "no answer on its status subject"})`);
      await sleep(POLL_MS);
    }
  }

  /** A named worker: up once the running job lists its pid among its workers, with subtasks. */
  async startWorker(name: string, overrides: JobOverrides, timeoutMs: number): Promise<void> {
    const proc = this.launch(name, overrides);
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      if (!proc.running) throw new StepFailure(`worker ${name} ended (${proc.describeExit()}) before it ran subtasks of the job`);
      const status = await this.ctx.nats.status(this.ctx.jobName).catch(() => undefined);
      const me = status?.workers?.find((w) => w.pid === proc.pid);
      if (status?.state === "running" && me && me.subtasks.length > 0) return;
      if (Date.now() > deadline) {
        throw new StepFailure(`worker ${name} (pid ${proc.pid}) was not up within ${timeoutMs} ms: ${describeWorkers(status)}`);
      }
      await sleep(POLL_MS);
    }
  }

  /** The running process of worker `name`, or a failure saying why there is none. */
  require(name: string, what: string): Worker {
    const w = this.byName.get(name);
    const single = name === MAIN_WORKER && this.byName.size <= 1;
    if (!w) {
      if (single) throw new StepFailure(`cannot ${what}: no job process was started`);
      throw new StepFailure(`cannot ${what}: no worker ${name} was started (workers: ${[...this.byName.keys()].join(", ") || "none"})`);
    }
    if (!w.proc.running) {
      throw new StepFailure(`cannot ${what}: ${single ? "the job process" : `worker ${name}`} already ended (${w.proc.describeExit()})`);
    }
    return w;
  }

  async kill(name: string, timeoutMs: number): Promise<void> {
    // Already ended (a bounded job may finish at once): nothing to kill; later waits and expectations judge its end.
    if (this.byName.get(name)?.proc.running === false) return;
    const w = this.require(name, name === MAIN_WORKER && this.byName.size <= 1 ? "kill the process" : `kill worker ${name}`);
    w.proc.signal("SIGKILL");
    w.endedByStep = true;
    w.proc.judged = true;
    if (!(await w.proc.waitExit(timeoutMs))) throw new StepFailure(`worker ${name} did not die within ${timeoutMs} ms of SIGKILL`);
  }

  pause(name: string): void {
    const w = this.require(name, `pause worker ${name}`);
    if (w.paused) throw new StepFailure(`worker ${name} is paused already`);
    w.proc.signal("SIGSTOP");
    w.paused = true;
  }

  resume(name: string): void {
    const w = this.require(name, `resume worker ${name}`);
    if (!w.paused) throw new StepFailure(`worker ${name} is not paused`);
    w.proc.signal("SIGCONT");
    w.paused = false;
  }

  /** The options worker `name` was last started with (none when it never was). */
  overridesOf(name: string): JobOverrides {
    return this.byName.get(name)?.overrides ?? {};
  }

  /** Starts worker `name` again: at once when it ended; else it leaves (SIGTERM, exit 0) first. */
  async restart(name: string, overrides: JobOverrides | undefined, timeoutMs: number): Promise<void> {
    const w = this.byName.get(name);
    if (!w) throw new StepFailure(`cannot restart worker ${name}: it was never started (workers: ${[...this.byName.keys()].join(", ") || "none"})`);
    if (w.proc.running) await this.stopWorker(name, 0, timeoutMs);
    return this.startWorker(name, overrides ?? w.overrides, timeoutMs);
  }

  /** Worker `name` leaves the job (SIGTERM); the others continue it. */
  async stopWorker(name: string, exit: ExitMatcher, timeoutMs: number): Promise<void> {
    const w = this.require(name, `stop worker ${name}`);
    if (w.paused) throw new StepFailure(`cannot stop worker ${name}: it is paused (resume it first)`);
    w.proc.signal("SIGTERM");
    w.endedByStep = true;
    await this.awaitExit(name, w.proc, exit, timeoutMs);
  }

  /**
   * The job stops: every running worker gets SIGTERM (as a `--workers N` supervisor forwards Ctrl-C), or
   * the leader gets the stop request; every worker must then end with `exit`.
   */
  async stopJob(via: "signal" | "control", savepoint: boolean, exit: ExitMatcher, timeoutMs: number): Promise<void> {
    const running = this.running();
    if (running.length === 0) {
      // A bounded job may have ended by itself: the stop holds when every process that ended by itself
      // ended as the step expects (a worker an earlier kill or stop step ended was judged by that step).
      if (this.byName.size === 0) this.require(MAIN_WORKER, "stop the job");
      for (const [name, w] of this.byName) if (!w.endedByStep) await this.awaitExit(name, w.proc, exit, timeoutMs);
      return;
    }
    const paused = running.filter(([, w]) => w.paused).map(([n]) => n);
    if (paused.length) throw new StepFailure(`cannot stop the job: worker ${paused.join(", ")} is paused (resume it first)`);
    if (via === "signal") {
      if (savepoint) throw new StepFailure("a savepoint needs via: control (the stop request); SIGTERM stops without one");
      for (const [, w] of running) w.proc.signal("SIGTERM");
    } else {
      const answer = await this.ctx.nats.control(this.ctx.jobName, ControlVerb.Stop, { savepoint }, timeoutMs);
      if (!answer && running.some(([, w]) => w.proc.running)) throw new StepFailure("the job did not answer the stop request");
      // Refused (a savepoint of a job without checkpoints): the job goes on, so waiting for its exit would only time out.
      if (answer && !answer.ok) throw new StepFailure(`the job refused the stop request: ${answer.error ?? "no reason given"}`);
    }
    await Promise.all(running.map(([name, w]) => this.awaitExit(name, w.proc, exit, timeoutMs)));
  }

  private async awaitExit(name: string, proc: JobProcess, exit: ExitMatcher, timeoutMs: number): Promise<void> {
    const who = name === MAIN_WORKER && this.byName.size <= 1 ? "the job" : `worker ${name}`;
    const result = await proc.waitExit(timeoutMs);
    proc.judged = true;
    if (!result) {
      await proc.kill();
      throw new StepFailure(`${who} did not stop within ${timeoutMs} ms (killed it)`);
    }
    if (!exitMatches(result, exit)) throw new StepFailure(`${who} stopped with ${proc.describeExit()}, expected exit ${exit}`);
  }

  /**
   * A process that ended by itself with a non-zero exit that no step or expectation looked at (a job that
   * failed after writing the output expected): one failure each, as a test harness fails on an exception.
   */
  unexpectedFailures(): string[] {
    return this.processes.filter((p) => !p.running && !p.judged && p.exit!.code !== 0).map((p) => {
      const name = this.nameOf.get(p)!;
      const who = name === MAIN_WORKER && this.processes.length === 1 ? "the job" : `worker ${name} (pid ${p.pid})`;
      return `${who} ended with ${p.describeExit()}, which no step or expectation expected (a wait: { exit: nonzero } step, or an exit or failure expectation, expects it)`;
    });
  }

  /** Kills every process (a paused one is continued first, so it can die and its stderr be read). */
  async cleanup(): Promise<void> {
    for (const w of this.byName.values()) if (w.proc.running && w.paused) w.proc.signal("SIGCONT");
    await Promise.all(this.processes.filter((p) => p.running).map((p) => p.kill()));
  }
}

/** "workers: pid 12 (leader, 2 subtasks), pid 13 (0 subtasks); state running" for messages. */
export function describeWorkers(s: JobStatus | undefined): string {
  if (!s) return "the job does not answer";
  const ws = (s.workers ?? []).map((w) => `pid ${w.pid} (${w.leader ? "leader, " : ""}${w.subtasks.length} subtasks)`);
  return `workers ${ws.join(", ") || "none"}; state ${s.state}`;
}
