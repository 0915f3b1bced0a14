// One worker of a job: every `weir run` process (or program calling executeAsWorker) connected to the
// same NATS with the same job name. It publishes heartbeats, competes for the job's lease, and either
// leads (runs the job and checkpoint coordinators, places subtasks over the workers, detects workers that
// die, join or leave) or follows (runs the subtasks the leader deployed on it). Its lifecycle is
// actors/worker/machine.ts; this class performs the effects.

import { hostname } from "node:os";
import { randomBytes } from "node:crypto";
import { createActor, type Actor } from "xstate";
import type { NatsConnection, Subscription } from "@nats-io/transport-node";
import { JobNames } from "../../runtime/core/names.ts";
import { ManualClock, systemClock } from "../../runtime/core/clock.ts";
import type { LogFn } from "../../runtime/core/log.ts";
import { ErrorCode, WeirError, describeError, messageOf } from "../../runtime/core/errors.ts";
import type { JobGraph } from "../../runtime/graph/job-graph.ts";
import type { ResolvedJobOptions } from "../../runtime/contracts/job-options.ts";
import { JobLog, type JobLogRecord } from "../../runtime/cluster/job-log.ts";
import { jobIdentity, type JobIdentity } from "../../runtime/cluster/job-identity.ts";
import type { JobModules } from "../../runtime/cluster/job-modules.ts";
import { watchPermissionDenials } from "../../runtime/nats/denials.ts";
import { LeaderLease } from "../../runtime/cluster/leader-lease.ts";
import { WorkerHeartbeat } from "../../runtime/cluster/membership.ts";
import { type JobResult, type JobRunnerOptions, type JobStatus } from "../job/job-runner.ts";
import { ControlVerb, JobEnded, decodeMessage } from "../job/control-protocol.ts";
import { requestControl } from "../job/control-client.ts";
import { DeadLetterPublisher } from "../subtask/dead-letters.ts";
import { loadRestore } from "../job/job-checkpoints.ts";
import { CheckpointStore } from "../../runtime/checkpoint/store.ts";
import { workerMachine, type WorkerState } from "./machine.ts";
import { WorkerHost } from "./worker-host.ts";
import { LeaderSide, memberTimeoutMs, type WorkerSummary } from "./leader-side.ts";
import { StateWriteFence, answerMembershipPing } from "./state-write-fence.ts";
import { followerStatus } from "./follower-status.ts";
import { diedRunLineage, takeoverLine, takeoverRestore, type LeaderRestore } from "./takeover-restore.ts";
import { retryJetStream } from "../../state/backends/jetstream-retry.ts";

// The job options heartbeatIntervalMs and heartbeatTimeoutMs time the control plane. The lease (a leader
// silent this long may lose it to another worker) is the timeout: long enough for JetStream's answers under
// load (the soak saw appends take over 2 s); a dead leader is replaced sooner, as a follower pings it every
// interval and a dead one gives "no responders" at once.
/** A follower leaving waits this long for the leader to take its subtasks away. */
const LEAVE_TIMEOUT_MS = 15_000;
/** A follower told the whole job stops (stopEndsJob) waits this long for the leader's end before it leaves. */
const STOP_WAIT_MS = 60_000;
type JobEndRecord = Extract<JobLogRecord, { kind: "end" }>;

export type WorkerStatus = JobStatus & { readonly workers: readonly WorkerSummary[]; readonly epoch: number; readonly worker: string; readonly leader?: string };

export class JobWorker {
  readonly id: string;
  readonly names: JobNames;
  readonly actor: Actor<typeof workerMachine>;
  private log!: JobLog;
  private lease!: LeaderLease;
  private heartbeat!: WorkerHeartbeat;
  private host!: WorkerHost;
  private leading: LeaderSide | undefined;
  private readonly deadLetters: DeadLetterPublisher;
  private endedSub: Subscription | undefined;
  private probeTimer: NodeJS.Timeout | undefined;
  private fence!: StateWriteFence;
  private leaderSeenAt = performance.now();
  /** The job log's last sequence when this worker started: a leader's record after it means a live run. */
  private logSeqAtStart = 0;
  /** Another worker appended to the job log as leader while this one ran: this worker joined a live run. */
  private joinedLiveRun = false;
  private readonly started = Date.now();
  /** Changes when this worker was declared gone and comes back: the leader tells incarnations apart by it. */
  private incarnation = Date.now();
  /** The epoch this worker last came back from as a new incarnation (see renew). */
  private renewedAfter: number | undefined;
  private spareIn: number | undefined; // the latest deployment that left it out while it ran nothing (a spare)
  private readonly say: LogFn;
  private settle!: { resolve: (r: JobResult) => void; reject: (e: unknown) => void };
  private readonly done: Promise<JobResult>;
  /** Resolves once this worker runs its part of the job (leading: the job runs; following: deployed). */
  private ready!: { promise: Promise<void>; resolve: () => void; reject: (e: unknown) => void };

  /**
   * Wall-clock ms when the run this worker belongs to began (`weir run --workers N`: the supervisor's
   * start; default: this worker's creation). A job end the log stored after it is this run's end: a worker
   * joining late (the bounded job already over) ends too instead of running the job a second time.
   */
  private readonly runStartedAt: number;
  /** The job graph and options this worker runs (the leader places only on workers running its own). */
  private readonly identity: JobIdentity;
  /**
   * A stop means the whole job (`weir run --workers N`: the supervisor signals every worker at once): the
   * leader stops it gracefully, with a final checkpoint; the others wait for that end instead of leaving.
   */
  private readonly stopEndsJob: boolean;
  /** Such a stop, asked while following: if this worker comes to lead (the leader died), it stops the job. */
  private stopAsked: { savepoint?: boolean } | undefined;

  constructor(readonly graph: JobGraph, readonly job: ResolvedJobOptions, private readonly nc: NatsConnection, private readonly options: JobRunnerOptions, run: { startedAt?: number; stopEndsJob?: boolean; modules?: JobModules } = {}) {
    this.runStartedAt = run.startedAt ?? Date.now();
    this.stopEndsJob = run.stopEndsJob ?? false;
    this.identity = jobIdentity(graph, job, options.clock instanceof ManualClock ? "manual" : "system", run.modules);
    this.names = new JobNames(job.name, job.natsReplicas);
    this.id = `${hostname().replace(/[^A-Za-z0-9_-]/g, "-").slice(0, 20)}-${process.pid}-${randomBytes(2).toString("hex")}`;
    // A structured logger (options.log) gets this worker's id as a field; the default prints it in a prefix.
    const log = options.log;
    this.say = log ? (m, f) => log(m, { worker: this.id, ...f }) : (m) => process.stderr.write(`[weir ${job.name} ${this.id}] ${m}\n`);
    this.deadLetters = new DeadLetterPublisher(nc, this.names, this.say);
    this.done = new Promise((resolve, reject) => { this.settle = { resolve, reject }; });
    this.done.catch(() => {});
    const ready: Partial<JobWorker["ready"]> = {};
    ready.promise = new Promise<void>((resolve, reject) => { ready.resolve = resolve; ready.reject = reject; });
    ready.promise.catch(() => {});
    this.ready = ready as JobWorker["ready"];
    this.actor = createActor(workerMachine.provide({
      actions: {
        lead: () => this.lead(),
        abdicate: (_, p) => this.abdicate(p.reason),
        fence: (_, p) => { void this.host.cancelAll(p.reason); },
        leave: () => { void this.leave(); },
      },
    }), { id: `worker:${this.id}`, input: { worker: this.id } });
  }

  get state(): WorkerState { return this.actor.getSnapshot().value as WorkerState; }
  get isLeader(): boolean { return this.state === "leading"; }

  async start(): Promise<void> {
    this.log = await JobLog.open(this.nc, this.names, { replicas: this.names.replicas });
    this.logSeqAtStart = await this.log.lastSeq();
    watchPermissionDenials(this.nc, (e) => this.onPermissionDenied(e));
    this.fence = new StateWriteFence({
      nc: this.nc, names: this.names, workerId: this.id, memberTimeoutMs: memberTimeoutMs(this.job), pingTimeoutMs: this.job.heartbeatIntervalMs * 2,
      leads: () => this.isLeader && this.lease.isLeader, leader: () => this.lease.leader, epoch: () => this.leading?.epoch ?? this.host.currentEpoch,
      onLeaderSeen: () => { this.leaderSeenAt = performance.now(); },
      onLeaderGone: (leader) => this.lease.leaderGone(leader),
    });
    this.host = new WorkerHost({
      workerId: this.id, nc: this.nc, names: this.names, graph: this.graph, deadLetters: this.deadLetters, log: this.say,
      ...(this.options.graphFor ? { graphFor: this.options.graphFor } : {}),
      deps: {
        nc: this.nc, names: this.names, job: this.job, graph: this.graph, clock: this.options.clock ?? systemClock,
        createStateBackend: (request) => this.options.createStateBackend({ ...request, mayWrite: this.fence.forEpoch(this.host.currentEpoch) }), log: this.say, ...(this.job.inspect ? { inspect: this.job.inspect } : {}),
      },
      loadRestore: async (id) => loadRestore(await CheckpointStore.open(this.nc, this.names), this.job, id, id),
      mayAct: () => this.leaderIsFresh(),
      // The leader came back before watchLeader's next look (a freeze of about a lease): the command it
      // sent is lost all the same, so this worker leaves the epoch now (tests/worker-host).
      onRefused: (reason) => { if (this.state === "following") this.renew(reason); },
      onDeployed: () => this.ready.resolve(),
      onConnectionLost: () => this.fence.void(),
      ...(this.options.onSubtasksRetired ? { onRetired: this.options.onSubtasksRetired } : {}),
      onRefusedJob: (reason) => { if (!this.leading) this.endWith({ state: "failed", failure: `the job's leader gives this worker no subtasks: it runs ${reason}; run every worker of job ${this.job.name} from the same job file and options` }); },
      onSpare: (epoch) => { this.joinedLiveRun = true; this.supersede(epoch); }, // as a deployment that left it out
    });
    this.host.start();
    this.endedSub = this.nc.subscribe(this.names.ended, { callback: (err, msg) => { if (!err) this.onJobEnded(msg.data); } });
    this.heartbeat = new WorkerHeartbeat(this.nc, this.names, () => ({
      id: this.id, host: hostname(), pid: process.pid, startedAt: new Date(this.incarnation).toISOString(),
      epoch: this.leading?.epoch ?? this.host.currentEpoch, subtasks: this.leading ? this.leading.localSubtasks() : this.host.running.map((s) => s.id), identity: this.identity,
    }), { intervalMs: this.job.heartbeatIntervalMs, answerPing: (body) => answerMembershipPing(body, this.leading && ((w, e) => this.leading!.confirmsMember(w, e))) });
    this.lease = new LeaderLease(this.log, this.id, { leaseMs: this.job.heartbeatTimeoutMs }, {
      onElected: (epoch) => this.actor.send({ type: "ELECTED", epoch }),
      onDeposed: (reason) => this.actor.send({ type: "DEPOSED", reason }),
      // A leader seen in the log is asked at once, not at the next look (up to heartbeatIntervalMs away): a
      // crashed process's leader record, found by the `weir run` that replaces it, then frees the lease sooner.
      onLeaderSeen: () => { this.leaderSeenAt = performance.now(); this.fence.ask(); },
      onRecord: (record, seq) => {
        this.leaderSeenAt = performance.now();
        // What the log held when this worker started belongs to an earlier run (or this run's past): only
        // later deployments and ends are this worker's business (a crashed run's last record is its end).
        if (seq <= this.logSeqAtStart) return;
        this.joinedLiveRun = true;
        if (record.kind === "deploy" && !(this.id in record.assignment)) this.supersede(record.epoch);
        if (record.kind === "end" && !this.leading) this.endWith(record);
      },
      // A free lease after the run's end (its `ended` message missed): end too rather than run it again.
      mayTakeOver: async () => {
        const end = await this.endOfThisRun();
        if (end) this.endWith(end);
        return end === undefined;
      },
    });
    this.actor.start();
    void this.done.then(() => this.ready.resolve(), (e) => this.ready.reject(e));
    const ended = await this.endOfThisRun();
    if (ended) {
      this.say(`job ${this.job.name} ended (${ended.state}) before this worker joined it`);
      this.endWith(ended);
      return this.ready.promise;
    }
    this.heartbeat.start();
    this.lease.start();
    this.probeTimer = setInterval(() => this.watchLeader(), this.job.heartbeatIntervalMs);
    this.probeTimer.unref();
    // A worker that finds a leader follows it; one that finds none takes the lease within a moment.
    this.actor.send({ type: "JOINED" });
    await this.ready.promise;
  }

  result(): Promise<JobResult> { return this.done; }

  /**
   * SIGTERM or stop(): the only worker stops the job gracefully (final checkpoint); one of several leaves,
   * and the others continue the job from a checkpoint without it.
   */
  async stop(options: { savepoint?: boolean } = {}): Promise<JobResult> {
    const alone = this.leading !== undefined && this.leading.members().filter((w) => w !== this.id).length === 0;
    if (this.leading && (alone || this.stopEndsJob)) return this.leading.runner.stop(options).then((r) => r);
    if (this.stopEndsJob) {
      this.stopAsked = options;
      // Asked alone (a SIGTERM to this child only, not to the whole --workers group): the leader would
      // not know, and this worker would wait for an end nobody asked for.
      void requestControl(this.nc, this.names.job, ControlVerb.Stop, { savepoint: Boolean(options.savepoint) }).catch(() => {});
      // The leader stops the job and this worker ends with it; if no end comes (the leader is gone), it leaves.
      const timer = setTimeout(() => {
        if (this.state === "ended" || this.state === "left") return;
        if (this.leading) void this.leading.runner.stop(options).catch(() => {});
        else this.actor.send({ type: "LEAVE" });
      }, STOP_WAIT_MS);
      void this.done.finally(() => clearTimeout(timer)).catch(() => {});
      return this.done;
    }
    this.actor.send({ type: "LEAVE" });
    return this.done;
  }

  async cancel(): Promise<JobResult | undefined> {
    if (this.leading) return this.leading.runner.cancel();
    this.actor.send({ type: "LEAVE" });
    return this.done.catch(() => undefined);
  }

  async triggerCheckpoint(): Promise<number> {
    if (!this.leading) throw new Error(`worker ${this.id} does not lead job ${this.job.name}: trigger checkpoints with weir on the leader`);
    return this.leading.runner.triggerCheckpoint();
  }

  status(): WorkerStatus {
    if (this.leading) return this.leading.runner.status() as WorkerStatus;
    return followerStatus({ job: this.job, started: this.started, host: this.host, worker: this.id, leader: this.lease?.leader, spareIn: this.spareIn });
  }

  /**
   * A later deployment without this worker (or the leader's spare notice): what it runs belongs to an older
   * epoch (it was cut off, or frozen, and declared gone). It stops them, and comes back as a new incarnation,
   * which the leader places anew. A spare worker (more workers than the job places on) has joined all the same: it runs.
   */
  private supersede(epoch: number): void {
    if (this.leading || epoch <= this.host.currentEpoch) return;
    this.ready.resolve();
    // Its subtasks may have ended already (the leader's cancel can arrive first after a thaw): it still
    // comes back, or the leader would ignore its heartbeats for good. Once per epoch it ran: a worker
    // left out for want of subtasks is not made to rejoin over and over.
    if (this.host.running.length === 0) { this.spareIn = epoch; return; }
    this.renew(`epoch ${epoch} was deployed without this worker`);
  }

  /** Stops what this worker runs and makes it a new incarnation, which the leader places anew. */
  private renew(reason: string): void {
    if (this.renewedAfter === this.host.currentEpoch) return;
    this.renewedAfter = this.host.currentEpoch;
    this.actor.send({ type: "FENCED", reason });
    this.incarnation = Date.now();
  }

  private leaderIsFresh(): boolean { return this.isLeader || performance.now() - this.leaderSeenAt <= this.job.heartbeatTimeoutMs; }

  /** Followers: no word from the leader for a lease → stop writing; a leader gone for good → take over. */
  private watchLeader(): void {
    if (this.state !== "following") return;
    if (!this.leaderIsFresh() && this.host.running.some((s) => !s.isTerminal)) this.renew(`no word from the leader for ${this.job.heartbeatTimeoutMs} ms`);
    // Also what keeps this worker's state writes going (state-write-fence.ts).
    this.fence.ask();
  }

  private lead(): void {
    const released = this.host.cancelAll("this worker leads now and deploys anew").then(() => this.host.retireAll());
    // Its own subtasks' state writes are fenced too: by its lease, for the epoch they were deployed in.
    const createStateBackend: JobRunnerOptions["createStateBackend"] = (request) => this.options.createStateBackend({ ...request, mayWrite: this.fence.forEpoch(this.leading?.epoch ?? -1) });
    const side = new LeaderSide({
      nc: this.nc, names: this.names, graph: this.graph, job: this.job, workerId: this.id, lease: this.lease, log: this.say,
      runnerOptions: { ...this.options, createStateBackend, ...(this.options.log ? { log: this.say } : {}) },
      restoreOnLeading: (requested) => this.restoreOnLeading(requested), identity: this.identity,
    });
    this.leading = side;
    // A deposed leader's runner ends too (cancelled): that is not the job's end.
    side.start(released).then(
      () => {
        this.ready.resolve();
        if (this.stopAsked) void side.runner.stop(this.stopAsked).catch(() => {});
        return side.runner.result().then((r) => { if (this.leading === side) this.finish(r); }, (e) => { if (this.leading === side) this.fail(e); });
      },
      // The job did not start: whoever started this worker reports why (weir run: one line), no log twice.
      (e) => { if (this.leading === side) this.fail(e, "debug"); },
    );
  }

  /** Deposed: another worker holds the lease; what this one ran is the old epoch's. */
  private abdicate(reason: string): void {
    this.say(`no longer leading: ${reason}`);
    const side = this.leading;
    this.leading = undefined;
    void side?.abandon();
  }

  private async leave(): Promise<void> {
    const side = this.leading;
    if (side) {
      // Hand over: a fresh checkpoint, then the lease goes to another worker, which redeploys from it.
      await side.runner.freshCheckpoint({ pauseSources: true }).catch((e) => this.say(`checkpoint before leaving failed: ${messageOf(e)}`));
      this.leading = undefined;
      await side.abandon();
      await this.lease.stop();
    }
    await this.heartbeat.stop();
    const deadline = performance.now() + LEAVE_TIMEOUT_MS;
    while (this.host.running.some((s) => !s.isTerminal) && performance.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    await this.shutdown();
    this.actor.send({ type: "LEFT" });
    this.settle.resolve({ job: this.job.name, state: "stopped", left: true, durationMs: Date.now() - this.started, status: this.status() });
  }

  private onJobEnded(data: Uint8Array): void {
    let end: JobEnded;
    try { end = decodeMessage(JobEnded, data, `message on ${this.names.ended}`); } catch (e) { this.say(messageOf(e)); return; }
    if (this.leading || end.state === "running") return;
    this.endWith({ state: end.state === "finished" || end.state === "cancelled" || end.state === "failed" ? end.state : "stopped", ...(end.failure !== undefined ? { failure: end.failure } : {}) });
  }

  /**
   * The server denied a publish or subscription: no restart or new leader mends it, so this worker ends
   * with one line. A job this worker leads and runs fails by itself (its runner watches the connection).
   */
  private onPermissionDenied(e: WeirError): void {
    if (this.state === "ended" || this.state === "left" || (this.leading && this.leading.runner.state !== "created")) return;
    if (!this.leading) return this.endWith({ state: "failed", failure: e.message });
    void this.leading.runner.cancel();
    this.fail(e);
  }

  /** The job's end as the leader announced it (its `ended` message or its log record): this worker ends too, its figures its own subtasks' (share), its state that end (not "deploying"). */
  private endWith(end: { state: JobEndRecord["state"]; failure?: string }): void {
    if (this.state === "ended" || this.state === "left") return;
    this.actor.send({ type: "JOB_ENDED", state: end.state });
    void this.shutdown().then(() => {
      if (end.state === "failed") this.settle.reject(new WeirError(ErrorCode.InvalidJob, end.failure ?? `job ${this.job.name} failed`));
      else this.settle.resolve({ job: this.job.name, state: end.state, share: !this.leading, durationMs: Date.now() - this.started, status: { ...this.status(), state: end.state }, ...(end.failure !== undefined ? { failure: end.failure } : {}) });
    });
  }

  /**
   * What this worker restores as leader. `--restore` is what a run starts from: its first leader honours
   * it, and so does a new run after the last one ended or died whole. A worker taking over a live run
   * continues it instead (takeover-restore.ts). The run is live when this worker was deployed in it, a
   * deployment was stored since this run began, another leader appended to the log while this worker
   * ran, or a worker still heartbeating was deployed; then the run's history goes on too (`takeover`).
   */
  private async restoreOnLeading(requested: ResolvedJobOptions["restore"]): Promise<LeaderRestore> {
    // Read through elections (a takeover often follows a server lost): a failed read would end the run.
    const deploy = await retryJetStream(() => this.log.last("deploy"));
    if (deploy === undefined) return { restore: requested };
    const live = this.host.currentEpoch >= 0 || deploy.storedAt.getTime() >= this.runStartedAt || this.joinedLiveRun || (this.leading?.hasDeployedPeers() ?? false);
    const died = !live && requested === "latest" ? diedRunLineage(this.job.checkpointIntervalMs > 0, deploy, await retryJetStream(() => this.log.last("end"))) : undefined;
    if (!live) return { restore: requested, ...(died !== undefined ? { lineage: died } : {}) };
    const restore = takeoverRestore(requested, deploy, await retryJetStream(() => this.log.last("commit")));
    if (restore !== requested) this.say(takeoverLine(restore, requested));
    return { restore, ...(deploy.record.lineage !== undefined ? { lineage: deploy.record.lineage } : {}), takeover: { ...(this.lease.won ?? { from: deploy.record.leader, why: "expired" }), deployedAt: deploy.storedAt, leaseMs: this.job.heartbeatTimeoutMs } };
  }

  /** The job's end, if its log stored one since this worker's run began (see runStartedAt). */
  private async endOfThisRun(): Promise<JobEndRecord | undefined> {
    const end = await this.log.last("end").catch(() => undefined);
    return end && end.storedAt.getTime() >= this.runStartedAt ? end.record : undefined;
  }

  /** As leader: the end goes into the job log before the lease is released (workers that missed `ended` read it). */
  private async recordEnd(state: JobEndRecord["state"], failure?: string): Promise<void> {
    const record: JobEndRecord = { kind: "end", leader: this.id, epoch: this.lease.epoch, state, ...(failure !== undefined ? { failure: failure.slice(0, 2000) } : {}) };
    await this.lease.appendAsLeader(record).catch((e: unknown) => this.say(`could not record the job's end in its log: ${messageOf(e)}`));
  }

  private finish(r: JobResult): void {
    this.actor.send({ type: "JOB_ENDED", state: r.state });
    void this.recordEnd(r.state).then(() => this.shutdown()).then(() => this.settle.resolve(r));
  }

  private fail(e: unknown, level: "error" | "debug" = "error"): void {
    if (!this.leading) return;
    this.say(`job failed: ${describeError(e)}`, { level, err: e });
    this.actor.send({ type: "JOB_ENDED", state: "failed" });
    void this.recordEnd("failed", describeError(e)).then(() => this.shutdown()).then(() => this.settle.reject(e));
  }

  private async shutdown(): Promise<void> {
    if (this.probeTimer) clearInterval(this.probeTimer);
    this.endedSub?.unsubscribe();
    this.host.stop();
    await this.leading?.close();
    await this.heartbeat.stop().catch(() => {});
    await this.lease.stop().catch(() => {});
    await this.deadLetters.flush().catch(() => {});
  }
}
