// The job coordinator: one xstate actor (machine.ts) deploys a JobGraph's subtasks, watches them, decides
// restarts and ends the job; this class performs the machine's effects, runs the checkpoint coordinator
// (periodic, final and savepoints) and answers the control protocol (`weir status`, `weir stop`, scenarios).

import { randomBytes } from "node:crypto";
import { createActor, fromPromise, type Actor } from "xstate";
import type { NatsConnection, Subscription } from "@nats-io/transport-node";
import { DEPLOYED_STATES, jobMachine, jobStateOf, untilRunning, whenRunning, type JobState } from "./machine.ts";
import type { ResolvedJobOptions } from "../../runtime/contracts/job-options.ts";
import { ErrorCode, WeirError, describeError, messageOf } from "../../runtime/core/errors.ts";
import { defaultParallelism, type JobGraph } from "../../runtime/graph/job-graph.ts";
import { JobNames } from "../../runtime/core/names.ts";
import type { CheckpointCoordinator } from "../checkpoint/coordinator.ts";
import type { RestoreBundle } from "../../runtime/checkpoint/restore.ts";
import { newLineage } from "../../runtime/checkpoint/metadata.ts";
import type { CheckpointStore } from "../../runtime/checkpoint/store.ts";
import { systemClock, type Clock } from "../../runtime/core/clock.ts";
import { ConnectionWatch, RECOVERY_GRACE_MS, disconnectFailure } from "./connection-watch.ts";
import { handlersFor, publishJobEnded, serveControl } from "./control-server.ts";
import { DeadLetterPublisher } from "../subtask/dead-letters.ts";
import { checkpointsOff, openCheckpoints, restartPoint, startWithoutState, takeFinalCheckpoint } from "./job-checkpoints.ts";
import { FailureLog, jobStatusOf, lastStatusOf, recordCounts, type JobResult, type JobStatus, type RecordCounts } from "./job-status.ts";
import { LAST_STATUS_INTERVAL_MS, LastStatusWriter } from "./last-status.ts";
import { describeRestartBeginning, describeStopWhileRestarting, noRestartMends, userFunctionBug } from "./restart-strategy.ts";
import { Deployment, subtaskCount, type DeploymentEvents } from "./deployment.ts";
import type { SubtaskHandle } from "./subtask-handle.ts";
import type { JobRunnerOptions } from "./job-runner-options.ts";
import { flushConnection } from "../../runtime/nats/flush.ts";
export type { JobFailure, JobResult, JobStatus } from "./job-status.ts";
export type { ClusterHooks, JobRunnerOptions } from "./job-runner-options.ts";

export class JobRunner {
  readonly names: JobNames;
  readonly actor: Actor<typeof jobMachine>;
  private attemptId = randomBytes(4).toString("hex");
  /** Records counted by the deployments before the current one (status: counts over the whole run). */
  private carried: RecordCounts = { recordsIn: 0, recordsOut: 0 };
  protected deployment: Deployment | undefined;
  private readonly deadLetters: DeadLetterPublisher;
  private controlSubs: Subscription[] = [];
  private readonly started = Date.now();
  private failure: unknown;
  protected abandoned = false;
  /** The parallelism the graph was last built for (`parallelism: "auto"`). */
  private sizedFor: number;
  protected readonly failures = new FailureLog();
  private readonly done: Promise<JobResult>;
  protected readonly log: NonNullable<JobRunnerOptions["log"]>;
  private store: CheckpointStore | undefined;
  protected coordinator: CheckpointCoordinator | undefined;
  private restore: RestoreBundle | undefined;
  /** "started": the machine runs; before, a cancel is a flag ("cancelled") that start() heeds. */
  private phase: "before" | "cancelled" | "started" = "before";
  private stopRequested = false;
  private cancelRequested = false;
  private settleBeforeStart!: { reject: (e: unknown) => void };
  /** What this run started from and `latest`'s revision then (restartPoint); its lineage when it restored nothing (a takeover's, else new). */
  private startPoint: { revision: number; restore: RestoreBundle | undefined; lineage: string } = { revision: 0, restore: undefined, lineage: "" };
  private stopKind: "checkpoint" | "savepoint" = "checkpoint";
  private finalCheckpointStarted = false;
  readonly checkpointing: boolean;
  private connection: ConnectionWatch | undefined;
  readonly clock: Clock;
  private readonly controlClock: Clock;
  /** The last known status in the jobs bucket, for `weir status` once this process is gone. */
  private readonly lastStatus: LastStatusWriter;
  private lastStatusTimer: NodeJS.Timeout | undefined;

  constructor(
    private jobGraph: JobGraph,
    readonly job: ResolvedJobOptions,
    private readonly nc: NatsConnection,
    private readonly options: JobRunnerOptions,
  ) {
    this.names = new JobNames(job.name, job.natsReplicas);
    this.sizedFor = job.parallelism;
    this.checkpointing = job.checkpointIntervalMs > 0;
    this.clock = options.clock ?? systemClock;
    this.controlClock = options.controlClock ?? systemClock;
    this.log = options.log ?? ((m) => process.stderr.write(`[weir ${job.name}] ${m}\n`));
    this.deadLetters = new DeadLetterPublisher(nc, this.names, this.log);
    this.lastStatus = new LastStatusWriter(nc, this.log, this.names.replicas);
    const total = subtaskCount(jobGraph);
    this.actor = createActor(
      jobMachine.provide({
        actions: {
          deploy: () => { void this.deploy(); },
          cancelAll: () => { this.cancelAll(); },
          stopSources: (_, p) => {
            this.stopKind = p.savepoint ? "savepoint" : "checkpoint";
            for (const s of this.subtasks) if (s.isSource) s.requestStop();
          },
          reportDecision: ({ context }) => { if (context.decision?.restart === false) this.log(`not restarting: ${context.decision.reason}`); },
          beginRestart: ({ context }) => this.beginRestart(context.outage, context.restarts - context.outageRestarts, context.rescaling),
          reportStopWhileRestarting: () => this.log(describeStopWhileRestarting(this.coordinator?.stats().lastCompleted?.id ?? this.restore?.id)),
        },
        actors: { prepareRestart: fromPromise(() => this.prepareRestart()) },
      }),
      // Named, so inspection events (job.inspect) say which actor they come from.
      {
        id: `job:${job.name}`, systemId: `job:${job.name}`, clock: this.controlClock,
        input: { job: job.name, subtasks: total, strategy: job.restartStrategy, checkpointing: this.checkpointing },
        ...(job.inspect ? { inspect: job.inspect } : {}),
      },
    );
    this.done = new Promise<JobResult>((resolve, reject) => {
      this.settleBeforeStart = { reject };
      this.actor.subscribe({
        next: (snap) => {
          if (snap.status !== "done") return;
          const state = jobStateOf(snap.value);
          const failure = state === "failed" || snap.context.stoppedWhileRestarting ? snap.context.failure : undefined; // or what it recovered from
          this.announceEnd(state, failure);
          void this.cleanup().then(() => {
            if (state === "failed") reject(this.failure ?? new WeirError(ErrorCode.InvalidJob, snap.context.failure ?? "job failed"));
            else resolve({ job: job.name, state: state as JobResult["state"], durationMs: Date.now() - this.started, status: this.status(), ...(failure ? { failure } : {}) });
          });
        },
      });
    });
    // The caller decides whether a failure is handled; avoid an unhandled rejection meanwhile.
    this.done.catch(() => {});
  }

  private get subtasks(): readonly SubtaskHandle[] { return this.deployment?.subtasks ?? []; }
  /** The graph of the current deployment (with `parallelism: "auto"`, sized for the workers there are). */
  get graph(): JobGraph { return this.jobGraph; }
  get state(): JobState { return jobStateOf(this.actor.getSnapshot().value); }
  get attempt(): string { return this.attemptId; }
  /** The run's lineage (runtime/checkpoint/metadata.ts), in its checkpoints and dead-letter ids: a restore continues its checkpoint's. */
  private get lineage(): string { return this.restore?.lineage ?? this.startPoint.lineage; }

  /** Opens checkpoint storage, finds what to restore, deploys; resolves once the job runs. */
  async start(): Promise<void> {
    try {
      await this.prepare();
    } catch (e) {
      // Nothing ran: the job ends here (a cancel meanwhile, a checkpoint that cannot be restored).
      this.failure = e;
      await this.coordinator?.stop();
      this.settleBeforeStart.reject(e);
      throw e;
    }
    this.phase = "started";
    await this.runActor();
  }

  /** Opens checkpoint storage and finds what to restore. */
  private async prepare(): Promise<void> {
    this.stopIfCancelled();
    const { restore, lineage } = this.options.cluster ? await this.options.cluster.restoreOnLeading(this.job.restore) : { restore: this.job.restore, lineage: undefined };
    if (restore === "none" && this.options.resetState) await startWithoutState(this.nc, this.names, this.options.resetState);
    ({ store: this.store, coordinator: this.coordinator, restore: this.restore } = await openCheckpoints({
      nc: this.nc, names: this.names, graph: this.graph, job: restore === this.job.restore ? this.job : { ...this.job, restore }, log: this.log, clock: this.controlClock,
      ...(this.options.cluster ? { fence: (id: number) => this.options.cluster!.fenceCommit(id), restoreCommitted: typeof restore === "number" && restore !== this.job.restore } : {}),
      // Checkpoints could only fail from now on: restart, and the restart finds out why (latestBehind).
      onCommitRefused: (e) => { if (this.state === "running") this.onSubtaskFailed(undefined, e, "checkpoint"); },
      onStalled: (e) => { if (this.state === "running") this.onSubtaskFailed(undefined, e, "checkpoint"); },
      targets: () => this.subtasks.filter((s) => !s.isTerminal), lineage: () => this.lineage,
    }));
    this.startPoint = { revision: this.coordinator?.latestRevision ?? 0, restore: this.restore, lineage: lineage ?? newLineage() };
    this.stopIfCancelled();
  }

  private stopIfCancelled(): void { if (this.phase === "cancelled") throw new WeirError(ErrorCode.Cancelled, `job ${this.job.name} was cancelled before it started`); }

  /** Starts the job's machine and deploys; resolves once the job runs. */
  private async runActor(): Promise<void> {
    let lastState: JobState | undefined;
    this.actor.subscribe((snap) => { if (jobStateOf(snap.value) !== lastState) { lastState = jobStateOf(snap.value); this.recordLastStatus(); } });
    this.actor.start();
    (this.lastStatusTimer = setInterval(() => this.recordLastStatus(), LAST_STATUS_INTERVAL_MS)).unref();
    this.serveControl();
    this.connection = new ConnectionWatch(this.nc, this.controlClock, {
      onDisconnect: (server) => this.onDisconnect(server),
      onReconnect: (server) => { this.log(`NATS connection back (${server})`); this.reconnected(); },
      onPermissionDenied: (e) => { if (DEPLOYED_STATES.has(this.state)) this.onSubtaskFailed(undefined, e, "NATS"); },
      onClosedForGood: (e) => { if (DEPLOYED_STATES.has(this.state)) { this.failure = e; this.onSubtaskFailed(undefined, e, "NATS"); } },
      onClusterChange: () => this.log(`NATS: the cluster's servers changed; JetStream failures in the next ${RECOVERY_GRACE_MS / 1000} s are put down to it (a quick restart, not counted)`),
    });
    const running = untilRunning(this.actor, this.done);
    this.actor.send({ type: "DEPLOY" });
    await running;
    // Periodic checkpoints; finished sources do not count as in backlog (FLIP-309).
    this.coordinator?.schedule({
      intervalMs: this.job.checkpointIntervalMs, duringBacklogMs: this.job.checkpointIntervalDuringBacklogMs, whileIdleMs: this.job.checkpointIntervalWhileIdleMs,
      inBacklog: () => this.subtasks.some((s) => s.isSource && s.sourceIsBacklog && !s.isWaitingForFinalCheckpoint && !s.isTerminal),
      allowed: () => this.state === "running" && !this.finalCheckpointStarted,
    });
  }

  /** Resolves when the job ends; rejects with the first failure. */
  result(): Promise<JobResult> { return this.done; }

  /** Graceful stop: sources end, records drain, a final checkpoint (or savepoint) is taken, sinks commit. */
  stop(options: { savepoint?: boolean } = {}): Promise<JobResult> {
    if (options.savepoint && !this.checkpointing) return Promise.reject(checkpointsOff(this.job, "stop({ savepoint: true }) needs checkpointing"));
    // A batch job's results come only at the end of its input: ending the input early would emit partial ones as final.
    if (this.job.mode === "batch") {
      this.log(`stop: job ${this.job.name} runs in mode "batch", whose results come only at the end of its input; it is cancelled (no partial results)`);
      return this.cancel().then(() => this.done);
    }
    // Failing (nothing runs): now, but a savepoint once it runs; restarting: once it runs. A later failure ends it, unless an outage caused it.
    this.stopRequested = true;
    const stop = () => this.actor.send({ type: "STOP", savepoint: options.savepoint ?? false });
    if (this.state === "failing" && !options.savepoint) stop(); else whenRunning(this.actor, stop);
    return this.done;
  }

  async cancel(): Promise<JobResult | undefined> {
    // Before the machine runs, a CANCEL would wait for it: start() ends the job instead.
    this.cancelRequested = true;
    if (this.phase === "started") this.actor.send({ type: "CANCEL" }); else this.phase = "cancelled";
    return this.done.catch(() => undefined);
  }

  async triggerCheckpoint(): Promise<number> {
    if (!this.coordinator) throw checkpointsOff(this.job, "checkpoints are off for this job");
    // One asked for while the job restarts would wait on subtasks being replaced until it timed out (60 s), holding up the next.
    if (this.state !== "running") throw new WeirError(ErrorCode.Checkpoint, `job ${this.job.name} is ${this.state}: a checkpoint can be taken once it runs again`);
    return this.coordinator.trigger("checkpoint");
  }

  status(): JobStatus {
    const snap = this.actor.getSnapshot();
    return jobStatusOf({
      job: this.job, parallelism: defaultParallelism(this.graph), state: jobStateOf(snap.value), context: snap.context, attempt: this.attemptId, started: this.started,
      subtasks: this.subtasks, carried: this.carried, deadLetters: this.deadLetters.total, failures: this.failures.list(), graph: this.graph, disconnectedSince: this.connection?.disconnectedSince,
      ...(this.restore ? { restoredFrom: this.restore.id } : {}),
      ...(this.coordinator ? { checkpoints: this.coordinator.stats() } : {}),
      ...(this.options.cluster ? { workers: this.options.cluster.statusOfWorkers() } : {}),
    });
  }

  /** Fails one subtask (scenario step "kill subtask"). */
  failSubtask(id: string, reason = `subtask ${id} killed on request`): boolean { const s = this.deployment?.find(id); s?.injectFailure(reason); return s !== undefined; }

  private async deploy(): Promise<void> {
    try {
      const events: DeploymentEvents = {
        onFinished: () => this.actor.send({ type: "SUBTASK_FINISHED" }),
        onFailed: (s, e) => this.onSubtaskFailed(s, e),
        onAck: (snapshot, id) => this.coordinator?.ack(snapshot, id),
        onDecline: (id, reason) => this.coordinator?.decline(id, reason),
        onInputFinished: (s) => this.onInputFinished(s), onActive: (after) => this.coordinator?.noteActivity(after),
        onDirtyBudgetExceeded: () => this.earlyCheckpoint(),
        onWorkerReconnected: (worker) => this.coordinator?.abortPending(`worker ${worker}'s NATS connection was lost and came back (this checkpoint's messages may be lost)`),
      };
      const parallelism = this.options.cluster?.parallelism();
      this.resize(parallelism);
      const remote = await this.options.cluster?.deploy({ graph: this.graph, events, restoreId: this.restore?.id, lineage: this.lineage, ...(parallelism !== undefined ? { parallelism } : {}) });
      this.carried = recordCounts(this.subtasks, this.carried);
      this.deployment?.close(this.options.onSubtasksRetired);
      const deployment = new Deployment({
        graph: this.graph,
        deps: {
          nc: this.nc, names: this.names, job: this.job, graph: this.graph, clock: this.clock, createStateBackend: this.options.createStateBackend, log: this.log,
          ...(this.job.inspect ? { inspect: this.job.inspect } : {}),
          ...(this.restore ? { restore: this.restore } : {}),
        },
        attempt: this.attemptId, lineage: this.lineage, deadLetters: this.deadLetters, events, ...(remote ? { remote } : {}),
      });
      this.deployment = deployment;
      this.attemptId = deployment.attempt;
      const started = await deployment.start(() => this.state === "deploying" || this.state === "restarting");
      if (started) { this.actor.send({ type: "DEPLOYED", subtasks: subtaskCount(this.graph) }); this.finalCheckpointIfInputsEnded(); }
    } catch (e) {
      this.onSubtaskFailed(undefined, e);
    }
  }

  /** `parallelism: "auto"`: the graph at the parallelism the cluster asks for (state restores by key group). */
  private resize(parallelism: number | undefined): void {
    const graphFor = this.options.graphFor;
    if (parallelism === undefined || !graphFor || parallelism === this.sizedFor) return;
    this.sizedFor = parallelism;
    this.jobGraph = graphFor(parallelism);
    this.coordinator?.resize(Object.fromEntries(this.graph.vertices.map((v) => [v.uid, v.parallelism])));
    this.log(`parallelism ${parallelism} for ${this.options.cluster ? "the workers there are" : "this deployment"}`);
  }

  /** `notCounted`: the failure is not the job's (a NATS outage, a lost worker): a quick restart, not counted. */
  protected onSubtaskFailed(s: SubtaskHandle | undefined, e: unknown, what = "deployment", notCounted = false): void {
    this.failure ??= e;
    // A deployment a cancel or stop tore down (its state backend disposed under it) is no error of the job's.
    const tornDown = s === undefined && what === "deployment" && (this.phase === "cancelled" || this.cancelRequested || this.stopRequested);
    this.log(`${s ? `subtask ${s.id}` : what} ${tornDown ? "ended by the stop" : "failed"}: ${describeError(e)}`, { level: tornDown ? "info" : "error", ...(s ? { subtask: s.id } : {}), err: e });
    // The machine decides once per failure whether it restarts (machine.ts): not after a stop unless an outage caused it, nor on a closed connection.
    const outage = notCounted || ((this.connection?.inOutage() ?? false) && !userFunctionBug(e));
    const final = noRestartMends(e, this.state === "deploying") || (this.stopRequested && !outage) || this.nc.isClosed();
    this.actor.send({ type: "SUBTASK_FAILED", error: describeError(e), at: this.controlClock.now(), outage, final });
    const restarted = this.state === "failing" && this.actor.getSnapshot().context.decision?.restart === true;
    this.failures.add({ at: new Date().toISOString(), ...(s ? { subtask: s.id } : {}), error: describeError(e), restarted });
  }

  /** A subtask's input ended (checkpoints on): include it in the running checkpoint, or take the final one. */
  private onInputFinished(s: SubtaskHandle): void {
    const c = this.coordinator;
    if (!c) return;
    const pending = c.pendingBarrier();
    if (pending && !c.hasAcked(s.id)) s.triggerCheckpoint(pending);
    this.finalCheckpointIfInputsEnded();
  }

  /** Also on DEPLOYED: a worker's source can end before its reply to "run", while the job still deploys. */
  private finalCheckpointIfInputsEnded(): void {
    if ((this.state === "running" || this.state === "stopping") && this.subtasks.every((x) => x.isWaitingForFinalCheckpoint || x.isTerminal)) void this.finalCheckpoint();
  }

  /** FLIP-147: once every subtask's input ended, one more checkpoint holds the final state; then they close. */
  private async finalCheckpoint(): Promise<void> {
    if (this.finalCheckpointStarted || !this.coordinator) return;
    this.finalCheckpointStarted = true;
    // Only for this deployment: after a restart meanwhile, a retry would checkpoint subtasks still opening.
    const deployment = this.deployment;
    const current = () => this.deployment === deployment && (this.state === "running" || this.state === "stopping");
    try {
      if (!(await takeFinalCheckpoint(this.coordinator, this.stopKind, this.log, current))) return;
    } catch (e) {
      if (current()) this.onSubtaskFailed(undefined, e);
      return;
    }
    if (current()) for (const s of this.subtasks) s.release();
  }

  /** A backend's uncommitted changes are over budget: checkpoint now rather than at the next interval. */
  private earlyCheckpoint(): void {
    const c = this.coordinator;
    if (!c || c.busy || this.state !== "running" || this.finalCheckpointStarted) return;
    c.trigger("checkpoint", { ifIdle: true }).catch((e) => this.log(`early checkpoint (state over budget) failed: ${messageOf(e)}`));
  }

  private cancelAll(): void {
    const cancelled = this.deployment?.cancel() ?? Promise.resolve();
    this.coordinator?.abortPending("the job is restarting or ending");
    // Cancellation is synchronous for the subtasks' loops (remote workers answer once theirs are): callbacks settle, then report.
    void cancelled.catch(() => {}).then(() => setImmediate(() => this.actor.send({ type: "ALL_TERMINATED", at: this.controlClock.now() })));
  }

  /** Back after a disconnect: each subtask grants and probes again (a lost frame then fails its consumer). */
  protected reconnected(): void { for (const x of this.subtasks) x.onReconnected(); }

  /** A disconnect may have lost frames between subtasks: a restart, or a probe of every channel once back (disconnectFailure). */
  private onDisconnect(server: string): void {
    const lost = disconnectFailure(server, this.state, this.checkpointing);
    if (typeof lost === "string") this.log(lost); else this.onSubtaskFailed(undefined, lost, "connection");
  }

  /** The machine's `prepareRestart`: the checkpoint to restart from, once NATS is back (JetStream may answer late at first). */
  private async prepareRestart(): Promise<void> {
    try {
      this.restore = await restartPoint({
        store: this.store, coordinator: this.coordinator, job: this.job, bucket: this.names.checkpointBucket, clock: this.controlClock, log: this.log,
        ready: () => this.connection?.readyForRestart(() => this.state === "failing", (line) => this.log(line)) ?? Promise.resolve(),
        retryable: () => (this.connection?.inOutage() ?? false) && !this.nc.isClosed() && this.state === "failing",
        start: this.startPoint,
      });
    } catch (e) {
      this.failure = (await this.connection?.explainFailure(e)) ?? e;
      throw this.failure;
    }
  }

  /** The machine's `beginRestart`: a new attempt from the checkpoint prepareRestart found. */
  private beginRestart(outage: boolean, counted: number, rescale: string | undefined): void {
    this.attemptId = randomBytes(4).toString("hex");
    this.finalCheckpointStarted = false;
    const lostWorker = this.failure instanceof WeirError && this.failure.code === ErrorCode.WorkerLost;
    this.failure = undefined;
    this.log(describeRestartBeginning({ rescale, outage, lostWorker, counted, strategy: this.job.restartStrategy, fromCheckpoint: this.restore?.id }));
    if (this.stopRequested) whenRunning(this.actor, () => this.actor.send({ type: "STOP", savepoint: this.stopKind === "savepoint" }));
  }

  /** A small summary (never the subtasks): written at state changes and every few seconds. */
  private recordLastStatus(): void { if (!this.abandoned) this.lastStatus.write(lastStatusOf(this.status())); }

  /** Tells whoever waits for the end (`weir stop`) how the job ended; cleanup() flushes it out. */
  private announceEnd(state: JobState, failure: string | undefined): void {
    if (this.abandoned) return;
    const why = state === "failed" && this.failure !== undefined ? describeError(this.failure) : failure;
    publishJobEnded(this.nc, this.names, { job: this.job.name, state, attempt: this.attemptId, ...(why ? { failure: why } : {}) });
  }

  private async cleanup(): Promise<void> {
    this.connection?.stop();
    if (this.lastStatusTimer) clearInterval(this.lastStatusTimer);
    this.recordLastStatus();
    await this.lastStatus.flush();
    await this.coordinator?.stop();
    this.deployment?.close(this.abandoned ? this.options.onSubtasksRetired : undefined); // deposed: its subtasks run on elsewhere, /metrics counts on
    for (const sub of this.controlSubs.splice(0)) sub.unsubscribe();
    await this.deadLetters.flush().catch(() => {});
    await flushConnection(this.nc).catch(() => {});
  }

  private serveControl(): void {
    const ping = () => ({ job: this.job.name, state: this.state, attempt: this.attemptId, startedAt: new Date(this.started).toISOString() });
    this.controlSubs = serveControl(this.nc, this.names, handlersFor(this), ping);
  }
}
