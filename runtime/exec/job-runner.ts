// The job coordinator: one xstate actor (actors/job-machine.ts) that deploys the subtasks of a JobGraph,
// watches them and ends the job; this class performs the effects the machine asks for, runs the
// checkpoint coordinator (periodic checkpoints, the final checkpoint when input ends, savepoints), restarts
// the job from its last checkpoint after a failure (restart strategy), and answers the control subjects
// (`weir status`, `weir stop`, scenarios).

import { randomBytes } from "node:crypto";
import { createActor, type Actor } from "xstate";
import type { NatsConnection, Status, Subscription } from "@nats-io/transport-node";
import { jobMachine, type JobState } from "../../actors/job-machine.ts";
import type { KeyedStateBackend } from "../../state/contracts.ts";
import type { ResolvedJobOptions } from "../contracts/job-options.ts";
import { ErrorCode, WeirError, describeError, messageOf } from "../core/errors.ts";
import type { JobGraph } from "../graph/job-graph.ts";
import { GlobalNames, JobNames } from "../core/names.ts";
import { CheckpointCoordinator, ID_BLOCK, type CheckpointStats } from "../checkpoint/coordinator.ts";
import { RestoreBundle } from "../checkpoint/restore.ts";
import { CheckpointStore } from "../checkpoint/store.ts";
import { systemClock, type Clock } from "../core/clock.ts";
import { DeadLetterPublisher } from "./dead-letters.ts";
import { LAST_STATUS_INTERVAL_MS, LastStatusWriter } from "./last-status.ts";
import { NO_HISTORY, decideRestart, describeRestartStrategy, type RestartDecision, type RestartHistory } from "./restart-strategy.ts";
import { Subtask, type StateBackendRequest, type SubtaskDeps, type SubtaskStatus } from "./subtask.ts";

export interface JobFailure {
  readonly at: string;
  readonly subtask?: string;
  readonly error: string;
  readonly restarted: boolean;
}

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
  readonly restarts: number;
  /** The restart strategy, described ("exponential-delay (1000-60000 ms ×2, reset after 300000 ms)"). */
  readonly restartStrategy: string;
  /** While a restart waits for its delay: when it will happen. */
  readonly nextRestartAt?: string;
  readonly nextRestartDelayMs?: number;
  /** The last failures (at most MAX_FAILURES_KEPT). */
  readonly failures: readonly JobFailure[];
  readonly restoredFrom?: number;
  readonly checkpoints?: CheckpointStats;
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
  readonly createStateBackend: (request: StateBackendRequest) => Promise<KeyedStateBackend>;
  /** Deletes the job's keyed state (for `--restore none`). */
  readonly resetState?: () => Promise<void>;
}

const FINAL_CHECKPOINT_ATTEMPTS = 3;
/**
 * A failure this soon after the NATS connection came back (JetStream still recovering its streams, requests
 * timing out) is put down to the outage: it restarts the job without using the restart strategy's attempts.
 */
const RECOVERY_GRACE_MS = 20_000;
const RECONNECT_POLL_MS = 100;
const OUTAGE_RESTART_DELAY_MS = 250;
/** A daemon may restart for months: status keeps only the latest failures. */
const MAX_FAILURES_KEPT = 20;

export class JobRunner {
  readonly names: JobNames;
  readonly actor: Actor<typeof jobMachine>;
  private attemptId = randomBytes(4).toString("hex");
  private subtasks: Subtask[] = [];
  private readonly deadLetters: DeadLetterPublisher;
  private readonly controlSubs: Subscription[] = [];
  private readonly started = Date.now();
  private failure: unknown;
  private readonly failures: JobFailure[] = [];
  private readonly done: Promise<JobResult>;
  private readonly log: (message: string) => void;
  private store: CheckpointStore | undefined;
  private coordinator: CheckpointCoordinator | undefined;
  private checkpointTimer: NodeJS.Timeout | undefined;
  private restore: RestoreBundle | undefined;
  private stopKind: "checkpoint" | "savepoint" = "checkpoint";
  private finalCheckpointStarted = false;
  private readonly checkpointing: boolean;
  /** From the connection's status events: whether it is up, and until when failures count as the outage's. */
  private connected = true;
  private recoveringUntil = 0;
  private statusWatch: { stop(): void } | undefined;
  /** Whether the current failure (from its first report) is put down to a NATS outage. */
  private outageFailure = false;
  /** Restarts caused by NATS outages: not counted against the restart strategy. */
  private outageRestarts = 0;
  private readonly clock: Clock;
  /** What the restart strategy remembers across failures, and its decision for the failure being handled. */
  private restartHistory: RestartHistory = NO_HISTORY;
  private restartDecision: RestartDecision | undefined;
  private nextRestart: { at: number; delayMs: number } | undefined;
  /** The last known status in the jobs bucket, for `weir status` once this process is gone. */
  private readonly lastStatus: LastStatusWriter;
  private lastStatusTimer: NodeJS.Timeout | undefined;

  constructor(
    readonly graph: JobGraph,
    readonly job: ResolvedJobOptions,
    private readonly nc: NatsConnection,
    private readonly options: JobRunnerOptions,
  ) {
    this.names = new JobNames(job.name);
    this.checkpointing = job.checkpointIntervalMs > 0;
    this.clock = options.clock ?? systemClock;
    this.log = options.log ?? ((m) => process.stderr.write(`[weir ${job.name}] ${m}\n`));
    this.deadLetters = new DeadLetterPublisher(nc, this.names, this.log);
    this.lastStatus = new LastStatusWriter(nc, this.log);
    const total = graph.vertices.reduce((n, v) => n + v.parallelism, 0);
    this.actor = createActor(
      jobMachine.provide({
        actions: {
          deploy: () => { void this.deploy(); },
          cancelAll: () => { this.cancelAll(); },
          stopSources: (_, p) => {
            this.stopKind = p.savepoint ? "savepoint" : "checkpoint";
            for (const s of this.subtasks) if (s.isSource) s.requestStop();
          },
        },
      }),
      // Named, so inspection events (job.inspect) say which actor they come from.
      { id: `job:${job.name}`, systemId: `job:${job.name}`, input: { job: job.name, subtasks: total }, ...(job.inspect ? { inspect: job.inspect } : {}) },
    );
    this.done = new Promise<JobResult>((resolve, reject) => {
      this.actor.subscribe({
        next: (snap) => {
          if (snap.status !== "done") return;
          const state = snap.value as JobState;
          this.announceEnd(state, snap.context.failure);
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
  get attempt(): string { return this.attemptId; }

  /** Opens checkpoint storage, finds what to restore, deploys; resolves once the job runs. */
  async start(): Promise<void> {
    if (this.job.restore === "none" && this.options.resetState) {
      // Starting without state means without the KV state a previous run left, too.
      await this.options.resetState();
    }
    if (this.checkpointing || typeof this.job.restore === "number") {
      this.store = await CheckpointStore.open(this.nc, this.names);
      const latest = await this.store.latest();
      if (this.checkpointing) {
        const timeoutMs = this.job.checkpointTimeoutMs;
        const ids = await this.store.reserveIds(latest?.pointer.id ?? 0, ID_BLOCK);
        this.coordinator = new CheckpointCoordinator(() => this.subtasks.filter((s) => !s.isTerminal), {
          job: this.job.name,
          store: this.store,
          firstId: ids.first,
          reservedThrough: ids.last,
          latestRevision: latest?.revision ?? 0,
          maxParallelism: this.graph.maxParallelism,
          parallelism: Object.fromEntries(this.graph.vertices.map((v) => [v.uid, v.parallelism])),
          timeoutMs,
          retain: this.job.checkpointsRetained,
          log: this.log,
          ...(this.job.inspect ? { inspect: this.job.inspect } : {}),
        });
      }
      this.restore = await this.loadRestore(this.job.restore, latest?.pointer.id);
      if (this.restore) this.log(`restoring from ${this.restore.checkpoint.kind} ${this.restore.id}`);
    }
    let lastState: unknown;
    this.actor.subscribe((snap) => {
      if (snap.value !== lastState) { lastState = snap.value; this.recordLastStatus(); }
    });
    this.actor.start();
    this.lastStatusTimer = setInterval(() => this.recordLastStatus(), LAST_STATUS_INTERVAL_MS);
    this.lastStatusTimer.unref();
    this.serveControl();
    this.watchConnection();
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
    if (this.checkpointing) this.scheduleCheckpoints();
  }

  /** Resolves when the job ends; rejects with the first failure. */
  result(): Promise<JobResult> { return this.done; }

  /** Graceful stop: sources end, records drain, a final checkpoint (or savepoint) is taken, sinks commit. */
  stop(options: { savepoint?: boolean } = {}): Promise<JobResult> {
    if (options.savepoint && !this.checkpointing) {
      return Promise.reject(new WeirError(ErrorCode.Checkpoint, "stop --savepoint needs checkpointing: set checkpointIntervalMs (or --checkpoint-interval)"));
    }
    this.actor.send({ type: "STOP", savepoint: options.savepoint ?? false });
    return this.done;
  }

  async cancel(): Promise<JobResult | undefined> {
    this.actor.send({ type: "CANCEL" });
    return this.done.catch(() => undefined);
  }

  async triggerCheckpoint(): Promise<number> {
    if (!this.coordinator) throw new WeirError(ErrorCode.Checkpoint, "checkpoints are off for this job: set checkpointIntervalMs");
    return this.coordinator.trigger("checkpoint");
  }

  status(): JobStatus {
    const subtasks = this.subtasks.map((s) => s.status());
    const sources = this.subtasks.filter((s) => s.isSource).map((s) => s.status());
    const sinksOut = this.subtasks.filter((s) => s.vertex.outputs.length === 0).map((s) => s.status().recordsOut);
    const snap = this.actor.getSnapshot();
    return {
      job: this.job.name,
      state: snap.value as JobState,
      attempt: this.attemptId,
      startedAt: new Date(this.started).toISOString(),
      uptimeMs: Date.now() - this.started,
      parallelism: this.job.parallelism,
      recordsIn: sources.reduce((n, s) => n + s.recordsIn, 0),
      recordsOut: sinksOut.reduce((n, x) => n + x, 0),
      deadLetters: this.deadLetters.total,
      ...(snap.context.failure ? { failure: snap.context.failure } : {}),
      restarts: snap.context.restarts,
      restartStrategy: describeRestartStrategy(this.job.restartStrategy),
      ...(this.nextRestart ? { nextRestartAt: new Date(this.nextRestart.at).toISOString(), nextRestartDelayMs: this.nextRestart.delayMs } : {}),
      failures: [...this.failures],
      ...(this.restore ? { restoredFrom: this.restore.id } : {}),
      ...(this.coordinator ? { checkpoints: this.coordinator.stats() } : {}),
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

  private async loadRestore(mode: ResolvedJobOptions["restore"], latestId: number | undefined): Promise<RestoreBundle | undefined> {
    if (mode === "none" || !this.store) return undefined;
    if (!this.checkpointing) {
      throw new WeirError(ErrorCode.Checkpoint, `restoring checkpoint ${mode} needs checkpointing on: set checkpointIntervalMs (or --checkpoint-interval)`);
    }
    const id = mode === "latest" ? latestId : mode;
    if (id === undefined) return undefined;
    const metadata = await this.store.read(id);
    if (!metadata) {
      if (mode === "latest") return undefined;
      throw new WeirError(ErrorCode.Checkpoint, `checkpoint ${id} of job ${this.job.name} does not exist (see weir checkpoints ${this.job.name})`);
    }
    return new RestoreBundle(metadata);
  }

  private async deploy(): Promise<void> {
    try {
      const deps: Omit<SubtaskDeps, "deadLetters"> = {
        nc: this.nc,
        names: this.names,
        attempt: this.attemptId,
        job: this.job,
        graph: this.graph,
        clock: this.clock,
        createStateBackend: this.options.createStateBackend,
        ...(this.job.inspect ? { inspect: this.job.inspect } : {}),
        ...(this.restore ? { restore: this.restore } : {}),
        log: this.log,
        onFinished: () => this.actor.send({ type: "SUBTASK_FINISHED" }),
        onFailed: (s, e) => this.onSubtaskFailed(s, e),
        onAck: (_s, snapshot, id) => this.coordinator?.ack(snapshot, id),
        onDecline: (_s, id, reason) => this.coordinator?.decline(id, reason),
        onInputFinished: (s) => this.onInputFinished(s),
        onDirtyBudgetExceeded: () => this.earlyCheckpoint(),
      };
      const subtasks: Subtask[] = [];
      for (const v of this.graph.vertices) {
        for (let i = 0; i < v.parallelism; i++) subtasks.push(new Subtask(v, i, { ...deps, deadLetters: this.deadLetters.forSubtask() }));
      }
      this.subtasks = subtasks;
      for (const s of subtasks) s.setup();
      await this.nc.flush();
      // Downstream first, so their state is open before records arrive.
      for (const s of [...subtasks].reverse()) await s.open();
      if (this.state !== "deploying" && this.state !== "restarting") return;
      for (const s of subtasks) if (!s.isSource) s.run();
      await this.nc.flush();
      for (const s of subtasks) if (s.isSource) s.run();
      this.actor.send({ type: "DEPLOYED" });
    } catch (e) {
      this.onSubtaskFailed(undefined, e);
    }
  }

  private onSubtaskFailed(s: Subtask | undefined, e: unknown, what = "deployment"): void {
    this.failure ??= e;
    this.log(`${s ? `subtask ${s.id}` : what} failed: ${describeError(e)}`);
    // The strategy decides once per failure of the job: further subtasks failing while it is torn down
    // are the same failure. A failure put down to a NATS outage restarts without counting against it.
    const state = this.state;
    if (state === "deploying" || state === "running" || state === "stopping" || state === "restarting") {
      this.outageFailure = this.inOutage();
      if (!this.checkpointing) {
        this.restartDecision = { restart: false, reason: "checkpoints are off, so there is nothing to restart from", history: this.restartHistory };
      } else if (this.outageFailure) {
        // After an outage the restart waits for the connection anyway; a short pause only spaces retries.
        this.restartDecision = { restart: true, delayMs: OUTAGE_RESTART_DELAY_MS, history: this.restartHistory };
      } else {
        this.restartDecision = decideRestart(this.job.restartStrategy, this.restartHistory, this.clock.now());
        this.restartHistory = this.restartDecision.history;
      }
      if (!this.restartDecision.restart) this.log(`not restarting: ${this.restartDecision.reason}`);
    }
    const willRestart = state !== "cancelling" && (this.restartDecision?.restart ?? false);
    this.failures.push({ at: new Date().toISOString(), ...(s ? { subtask: s.id } : {}), error: describeError(e), restarted: willRestart });
    if (this.failures.length > MAX_FAILURES_KEPT) this.failures.splice(0, this.failures.length - MAX_FAILURES_KEPT);
    this.actor.send({ type: "SUBTASK_FAILED", error: describeError(e) });
  }

  /** A subtask's input ended (checkpoints on): include it in the running checkpoint, or take the final one. */
  private onInputFinished(s: Subtask): void {
    const c = this.coordinator;
    if (!c) return;
    const pending = c.pendingBarrier();
    if (pending && !c.hasAcked(s.id)) s.triggerCheckpoint(pending);
    if (this.subtasks.every((x) => x.isWaitingForFinalCheckpoint || x.isTerminal)) void this.finalCheckpoint();
  }

  /** FLIP-147: once every subtask's input ended, one more checkpoint holds the final state; then they close. */
  private async finalCheckpoint(): Promise<void> {
    if (this.finalCheckpointStarted || !this.coordinator) return;
    this.finalCheckpointStarted = true;
    const kind = this.stopKind;
    for (let attempt = 1; attempt <= FINAL_CHECKPOINT_ATTEMPTS; attempt++) {
      try {
        await this.coordinator.idle();
        const id = await this.coordinator.trigger(kind);
        this.log(`final ${kind} ${id} completed`);
        break;
      } catch (e) {
        this.log(`final ${kind} failed (attempt ${attempt}/${FINAL_CHECKPOINT_ATTEMPTS}): ${messageOf(e)}`);
        if (attempt === FINAL_CHECKPOINT_ATTEMPTS) {
          this.onSubtaskFailed(undefined, new WeirError(ErrorCode.Checkpoint, `the final ${kind} could not be taken: ${messageOf(e)}`));
          return;
        }
      }
    }
    for (const s of this.subtasks) s.release();
  }

  /**
   * Periodic checkpoints: every checkpointIntervalMs, or every checkpointIntervalDuringBacklogMs while any
   * running source reads a backlog (0: none then, FLIP-309; finished sources do not count).
   */
  private scheduleCheckpoints(): void {
    const { checkpointIntervalMs: live, checkpointIntervalDuringBacklogMs: backlog } = this.job;
    const tick = Math.max(10, Math.min(live, backlog > 0 ? backlog : live) / 4);
    let last = Date.now();
    this.checkpointTimer = setInterval(() => {
      const c = this.coordinator;
      if (!c || c.busy || this.state !== "running" || this.finalCheckpointStarted) return;
      const inBacklog = this.subtasks.some((s) => s.isSource && s.sourceIsBacklog && !s.isWaitingForFinalCheckpoint && !s.isTerminal);
      const interval = inBacklog ? backlog : live;
      if (interval === 0 || Date.now() - last < interval) return;
      last = Date.now();
      c.trigger("checkpoint").catch((e) => this.log(`periodic checkpoint failed: ${messageOf(e)}`));
    }, tick);
    this.checkpointTimer.unref();
  }

  /** A backend's uncommitted changes are over budget: checkpoint now rather than at the next interval. */
  private earlyCheckpoint(): void {
    const c = this.coordinator;
    if (!c || c.busy || this.state !== "running" || this.finalCheckpointStarted) return;
    c.trigger("checkpoint").catch((e) => this.log(`early checkpoint (state over budget) failed: ${messageOf(e)}`));
  }

  private cancelAll(): void {
    for (const s of this.subtasks) s.cancel();
    this.coordinator?.abortPending("the job is restarting or ending");
    // Cancellation is synchronous for the subtasks' loops; let pending callbacks settle, then report.
    setImmediate(() => {
      const decision = this.restartDecision;
      if (this.state === "failing" && decision?.restart) {
        if (this.outageFailure) this.outageRestarts++;
        this.nextRestart = { at: this.clock.now() + decision.delayMs, delayMs: decision.delayMs };
        this.clock.setTimeout(() => { this.nextRestart = undefined; void this.restartFromCheckpoint(); }, decision.delayMs);
      } else {
        this.actor.send({ type: "ALL_TERMINATED" });
      }
    });
  }

  private inOutage(): boolean {
    return !this.connected || Date.now() < this.recoveringUntil;
  }

  /**
   * A disconnect may have lost frames and credits between subtasks (the client drops what it had not sent;
   * the server keeps no core-NATS message across a restart): with checkpoints the job restarts from its
   * last checkpoint, which never includes a lost frame (frame numbers, input-gate.ts).
   */
  private watchConnection(): void {
    const status = this.nc.status() as AsyncIterable<Status> & { stop?: () => void };
    this.statusWatch = { stop: () => status.stop?.() };
    void (async () => {
      for await (const s of status) {
        if (s.type === "disconnect") {
          this.connected = false;
          this.onDisconnect(s.server);
        } else if (s.type === "reconnect") {
          this.connected = true;
          this.recoveringUntil = Date.now() + RECOVERY_GRACE_MS;
          this.log(`NATS connection back (${s.server})`);
          for (const x of this.subtasks) x.onReconnected();
        }
      }
    })().catch(() => {});
  }

  private onDisconnect(server: string): void {
    const state = this.state;
    if (state !== "running" && state !== "deploying" && state !== "restarting" && state !== "stopping") {
      this.log(`NATS connection to ${server} lost (job ${state})`);
      return;
    }
    if (!this.checkpointing) {
      this.log(`NATS connection to ${server} lost: records in flight between subtasks may be lost (no checkpoints: at-most-once)`);
      return;
    }
    this.onSubtaskFailed(undefined, new WeirError(ErrorCode.Transport, `NATS connection to ${server} lost: records in flight between subtasks may be lost; restarting from the last checkpoint once it is back`), "connection");
  }

  /** Resolves once connected (or the job left `failing`, or the connection closed for good). */
  private async connectedAgain(): Promise<void> {
    let waited = false;
    while (!this.connected && this.state === "failing" && !this.nc.isClosed()) {
      if (!waited) this.log("waiting for the NATS connection to restart the job");
      waited = true;
      await new Promise((r) => setTimeout(r, RECONNECT_POLL_MS));
    }
  }

  /** The latest checkpoint, retried while NATS recovers from an outage (JetStream may answer late at first). */
  private async latestCheckpoint(): Promise<Awaited<ReturnType<CheckpointStore["latest"]>>> {
    for (;;) {
      await this.connectedAgain();
      try {
        return await this.store?.latest();
      } catch (e) {
        if (!this.inOutage() || this.nc.isClosed() || this.state !== "failing") throw e;
        this.log(`restart: reading the latest checkpoint from ${this.names.checkpointBucket} failed (${messageOf(e)}); retrying`);
        await new Promise((r) => setTimeout(r, 500));
      }
    }
  }

  private async restartFromCheckpoint(): Promise<void> {
    try {
      const latest = await this.latestCheckpoint();
      if (this.state !== "failing") return;
      this.restore = await this.loadRestore("latest", latest?.pointer.id);
      this.attemptId = randomBytes(4).toString("hex");
      this.finalCheckpointStarted = false;
      this.failure = undefined;
      const from = this.restore ? `checkpoint ${this.restore.id}` : "the beginning";
      this.log(this.outageFailure
        ? `restarting after the NATS outage from ${from} (not counted against the restart strategy)`
        : `restarting (restart ${this.actor.getSnapshot().context.restarts - this.outageRestarts + 1}, ${describeRestartStrategy(this.job.restartStrategy)}) from ${from}`);
      this.actor.send({ type: "RESTART" });
    } catch (e) {
      this.failure = e;
      this.actor.send({ type: "ALL_TERMINATED" });
    }
  }

  /** A small summary (never the subtasks): written at state changes and every few seconds. */
  private recordLastStatus(): void {
    const s = this.status();
    this.lastStatus.write({
      job: s.job, state: s.state, startedAt: s.startedAt,
      ...(s.failure !== undefined ? { failure: s.failure } : {}),
      restarts: s.restarts, restartStrategy: s.restartStrategy,
      ...(s.nextRestartAt !== undefined ? { nextRestartAt: s.nextRestartAt } : {}),
      recordsIn: s.recordsIn, recordsOut: s.recordsOut, deadLetters: s.deadLetters,
      ...(s.checkpoints?.lastCompleted ? { lastCheckpoint: s.checkpoints.lastCompleted.id } : {}),
    });
  }

  /** Tells whoever waits for the end (`weir stop`) how the job ended; cleanup() flushes it out. */
  private announceEnd(state: JobState, failure: string | undefined): void {
    const why = this.failure !== undefined ? describeError(this.failure) : failure;
    try {
      this.nc.publish(this.names.ended, JSON.stringify({ job: this.job.name, state, attempt: this.attemptId, ...(state === "failed" && why ? { failure: why } : {}) }));
    } catch { /* the connection is closed: nobody can hear it */ }
  }

  private async cleanup(): Promise<void> {
    if (this.checkpointTimer) clearInterval(this.checkpointTimer);
    this.statusWatch?.stop();
    if (this.lastStatusTimer) clearInterval(this.lastStatusTimer);
    this.recordLastStatus();
    await this.lastStatus.flush();
    await this.coordinator?.stop();
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
      const savepoint = Boolean((b as { savepoint?: boolean } | undefined)?.savepoint);
      if (savepoint && !this.checkpointing) return { ok: false, error: "stop --savepoint needs checkpointing (checkpointIntervalMs)" };
      void this.stop({ savepoint }).catch(() => {});
      return { ok: true, state: this.state };
    });
    reply(this.names.control("cancel"), () => { void this.cancel(); return { ok: true }; });
    reply(this.names.control("checkpoint"), () => {
      if (!this.coordinator) return { ok: false, error: "checkpoints are off for this job" };
      void this.coordinator.trigger("checkpoint").catch(() => {});
      return { ok: true };
    });
    reply(this.names.control("fail-subtask"), (b) => {
      const id = String((b as { subtask?: string } | undefined)?.subtask ?? "");
      return { ok: this.failSubtask(id) };
    });
    reply(GlobalNames.jobsPing, () => ({ job: this.job.name, state: this.state, attempt: this.attemptId, startedAt: new Date(this.started).toISOString() }));
  }
}
