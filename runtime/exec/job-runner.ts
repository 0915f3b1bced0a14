// The job coordinator: one xstate actor (actors/job-machine.ts) that deploys the subtasks of a JobGraph,
// watches them and ends the job; this class performs the effects the machine asks for and answers the
// control subjects (`weir status`, `weir stop`, scenarios).

import { randomBytes } from "node:crypto";
import { createActor, type Actor } from "xstate";
import type { NatsConnection, Subscription } from "@nats-io/transport-node";
import { jobMachine, type JobState } from "../../actors/job-machine.ts";
import type { KeyedStateBackend } from "../../state/contracts.ts";
import type { KeyGroupRange } from "../../state/key-groups.ts";
import type { ResolvedJobOptions } from "../api/options.ts";
import { ErrorCode, WeirError, describeError } from "../errors.ts";
import type { JobGraph } from "../graph/job-graph.ts";
import { GlobalNames, JobNames } from "../names.ts";
import { systemClock, type Clock } from "./clock.ts";
import { DeadLetterPublisher } from "./dead-letters.ts";
import { Subtask, type SubtaskStatus } from "./subtask.ts";

export interface JobStatus {
  readonly job: string;
  readonly state: JobState;
  readonly attempt: string;
  readonly startedAt: string;
  readonly uptimeMs: number;
  readonly parallelism: number;
  readonly recordsIn: number;
  readonly recordsOut: number;
  readonly deadLetters: number;
  readonly failure?: string;
  readonly subtasks: readonly SubtaskStatus[];
}

export interface JobResult {
  readonly job: string;
  readonly state: "finished" | "stopped" | "cancelled";
  readonly durationMs: number;
  readonly status: JobStatus;
}

export interface JobRunnerOptions {
  readonly clock?: Clock;
  readonly log?: (message: string) => void;
  readonly createStateBackend: (range: KeyGroupRange) => Promise<KeyedStateBackend>;
}

export class JobRunner {
  readonly names: JobNames;
  readonly attempt = randomBytes(4).toString("hex");
  readonly actor: Actor<typeof jobMachine>;
  private readonly subtasks: Subtask[] = [];
  private readonly deadLetters: DeadLetterPublisher;
  private readonly controlSubs: Subscription[] = [];
  private readonly started = Date.now();
  private failure: unknown;
  private readonly done: Promise<JobResult>;
  private readonly log: (message: string) => void;

  constructor(
    readonly graph: JobGraph,
    readonly job: ResolvedJobOptions,
    private readonly nc: NatsConnection,
    private readonly options: JobRunnerOptions,
  ) {
    this.names = new JobNames(job.name);
    this.log = options.log ?? ((m) => process.stderr.write(`[weir ${job.name}] ${m}\n`));
    this.deadLetters = new DeadLetterPublisher(nc, this.names, this.log);
    const total = graph.vertices.reduce((n, v) => n + v.parallelism, 0);
    this.actor = createActor(
      jobMachine.provide({
        actions: {
          deploy: () => { void this.deploy(); },
          cancelAll: () => { this.cancelAll(); },
          stopSources: () => { for (const s of this.subtasks) if (s.isSource) s.requestStop(); },
        },
      }),
      { input: { job: job.name, subtasks: total }, ...(job.inspect ? { inspect: job.inspect } : {}) },
    );
    this.done = new Promise<JobResult>((resolve, reject) => {
      this.actor.subscribe({
        next: (snap) => {
          if (snap.status !== "done") return;
          const state = snap.value as JobState;
          void this.cleanup().then(() => {
            if (state === "failed") reject(this.failure ?? new WeirError(ErrorCode.InvalidJob, snap.context.failure ?? "job failed"));
            else resolve({ job: job.name, state: state as JobResult["state"], durationMs: Date.now() - this.started, status: this.status() });
          });
        },
      });
    });
    // The caller decides whether a failure is handled; avoid an unhandled rejection meanwhile.
    this.done.catch(() => {});
  }

  get state(): JobState { return this.actor.getSnapshot().value as JobState; }

  /** Deploys every subtask; resolves once the job runs (or rejects if deployment failed). */
  async start(): Promise<void> {
    this.actor.start();
    this.serveControl();
    const running = new Promise<void>((resolve, reject) => {
      const sub = this.actor.subscribe((snap) => {
        if (snap.value === "running" || snap.status === "done") {
          sub.unsubscribe();
          if (snap.value === "running" || snap.value === "finished") resolve();
          else this.done.then(() => resolve(), reject);
        }
      });
    });
    this.actor.send({ type: "DEPLOY" });
    await running;
  }

  /** Resolves when the job ends; rejects with the first failure. */
  result(): Promise<JobResult> { return this.done; }

  stop(options: { savepoint?: boolean } = {}): Promise<JobResult> {
    this.actor.send({ type: "STOP", savepoint: options.savepoint ?? false });
    return this.done;
  }

  async cancel(): Promise<JobResult | undefined> {
    this.actor.send({ type: "CANCEL" });
    return this.done.catch(() => undefined);
  }

  status(): JobStatus {
    const subtasks = this.subtasks.map((s) => s.status());
    const sources = subtasks.filter((s) => this.subtasks.find((x) => x.id === s.id)?.isSource);
    const sinksOut = this.subtasks.filter((s) => s.vertex.outputs.length === 0).map((s) => s.status().recordsOut);
    const snap = this.actor.getSnapshot();
    return {
      job: this.job.name,
      state: snap.value as JobState,
      attempt: this.attempt,
      startedAt: new Date(this.started).toISOString(),
      uptimeMs: Date.now() - this.started,
      parallelism: this.job.parallelism,
      recordsIn: sources.reduce((n, s) => n + s.recordsIn, 0),
      recordsOut: sinksOut.reduce((n, x) => n + x, 0),
      deadLetters: this.deadLetters.total,
      ...(snap.context.failure ? { failure: snap.context.failure } : {}),
      subtasks,
    };
  }

  /** Fails one subtask (scenario step "kill subtask"). */
  failSubtask(id: string, reason = `subtask ${id} killed on request`): boolean {
    const s = this.subtasks.find((x) => x.id === id || `${x.vertex.name}#${x.index}` === id || x.vertex.nodes.some((n) => `${n.name}#${x.index}` === id || `${n.uid}#${x.index}` === id));
    if (!s) return false;
    s.injectFailure(reason);
    return true;
  }

  // ------------------------------------------------------------------ effects

  private async deploy(): Promise<void> {
    try {
      const deps = {
        nc: this.nc,
        names: this.names,
        attempt: this.attempt,
        job: this.job,
        graph: this.graph,
        clock: this.options.clock ?? systemClock,
        createStateBackend: this.options.createStateBackend,
        ...(this.job.inspect ? { inspect: this.job.inspect } : {}),
        log: this.log,
        onFinished: () => this.actor.send({ type: "SUBTASK_FINISHED" }),
        onFailed: (s: Subtask, e: unknown) => {
          this.failure ??= e;
          this.log(`subtask ${s.id} failed: ${describeError(e)}`);
          this.actor.send({ type: "SUBTASK_FAILED", error: describeError(e) });
        },
      };
      for (const v of this.graph.vertices) {
        for (let i = 0; i < v.parallelism; i++) this.subtasks.push(new Subtask(v, i, { ...deps, deadLetters: this.deadLetters.forSubtask() }));
      }
      for (const s of this.subtasks) s.setup();
      await this.nc.flush();
      // Downstream first, so their state is open before records arrive.
      for (const s of [...this.subtasks].reverse()) await s.open();
      if (this.state !== "deploying" && this.state !== "restarting") return;
      for (const s of this.subtasks) if (!s.isSource) s.run();
      await this.nc.flush();
      for (const s of this.subtasks) if (s.isSource) s.run();
      this.actor.send({ type: "DEPLOYED" });
    } catch (e) {
      this.failure ??= e;
      this.actor.send({ type: "SUBTASK_FAILED", error: describeError(e) });
    }
  }

  private cancelAll(): void {
    for (const s of this.subtasks) s.cancel();
    // Cancellation is synchronous for the subtasks' loops; let pending callbacks settle, then report.
    setImmediate(() => this.actor.send({ type: "ALL_TERMINATED" }));
  }

  private async cleanup(): Promise<void> {
    for (const s of this.subtasks) if (!s.isTerminal) s.cancel();
    for (const sub of this.controlSubs) sub.unsubscribe();
    this.controlSubs.length = 0;
    await this.deadLetters.flush().catch(() => {});
    await this.nc.flush().catch(() => {});
  }

  private serveControl(): void {
    const reply = (subject: string, handler: (data: unknown) => unknown) => {
      this.controlSubs.push(this.nc.subscribe(subject, {
        callback: (err, msg) => {
          if (err) return;
          let body: unknown = undefined;
          try { body = msg.data.length ? msg.json() : undefined; } catch { /* not JSON */ }
          let answer: unknown;
          try { answer = handler(body); } catch (e) { answer = { error: describeError(e) }; }
          if (msg.reply) msg.respond(JSON.stringify(answer));
        },
      }));
    };
    reply(this.names.control("status"), () => this.status());
    reply(this.names.control("stop"), (b) => {
      void this.stop({ savepoint: Boolean((b as { savepoint?: boolean } | undefined)?.savepoint) });
      return { ok: true, state: this.state };
    });
    reply(this.names.control("cancel"), () => { void this.cancel(); return { ok: true }; });
    reply(this.names.control("fail-subtask"), (b) => {
      const id = String((b as { subtask?: string } | undefined)?.subtask ?? "");
      return { ok: this.failSubtask(id) };
    });
    reply(GlobalNames.jobsPing, () => ({ job: this.job.name, state: this.state, attempt: this.attempt, startedAt: new Date(this.started).toISOString() }));
  }
}
