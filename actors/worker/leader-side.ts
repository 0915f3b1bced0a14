// What a worker runs while it leads its job: the job runner (job and checkpoint coordinators) with a
// cluster deployer, and the membership view that turns workers dying, joining and leaving into restarts
// and rebalances. Rebalances wait a short stabilization window, so a rolling restart of N replicas, or
// several workers starting together, is one pause each, not a storm.

import type { NatsConnection } from "@nats-io/transport-node";
import type { JobNames } from "../../runtime/core/names.ts";
import type { JobGraph } from "../../runtime/graph/job-graph.ts";
import type { ResolvedJobOptions } from "../../runtime/contracts/job-options.ts";
import { ErrorCode, WeirError, messageOf } from "../../runtime/core/errors.ts";
import type { LeaderLease } from "../../runtime/cluster/leader-lease.ts";
import { MembershipView, type MemberView } from "../../runtime/cluster/membership.ts";
import { identityDifference, type JobIdentity } from "../../runtime/cluster/job-identity.ts";
import { encodeCommand, type WorkerCommand } from "./protocol.ts";
import type { JobRunnerOptions } from "../job/job-runner.ts";
import { ClusterJobRunner } from "./cluster-job-runner.ts";
import type { WorkerSummary } from "../job/job-status.ts";
import { ClusterDeployer } from "./cluster-deployment.ts";
import { carriedHistory, previousStatus, type Takeover } from "./takeover-history.ts";

/** Joins and leaves within this window are one rebalance. */
export const STABILIZATION_MS = 1000;
/** `weir status` keeps the last rebalances. */
const MAX_REBALANCES = 20;
/** A spare's notice (keepPlacement) is asked this many times, each waiting this long for the reply. */
const SPARE_NOTICE_ATTEMPTS = 3;
const SPARE_NOTICE_TIMEOUT_MS = 5000;
/** A new leader waits this long for the heartbeats of workers already there (a heartbeat and a margin). */
const FIRST_PLACEMENT_WAIT_MS = 700;

export type { WorkerSummary };

export interface Rebalance { readonly at: string; readonly epoch: number; readonly cause: string }

export interface LeaderSideOptions {
  readonly nc: NatsConnection;
  readonly names: JobNames;
  readonly graph: JobGraph;
  readonly job: ResolvedJobOptions;
  readonly workerId: string;
  readonly lease: LeaderLease;
  readonly log: (message: string) => void;
  readonly runnerOptions: JobRunnerOptions;
  /** What this leader's deployments restore (ClusterHooks.restoreOnLeading); `takeover` when it takes over a live run. */
  readonly restoreOnLeading: (requested: ResolvedJobOptions["restore"]) => Promise<{ restore: ResolvedJobOptions["restore"]; lineage?: string; takeover?: Takeover }>;
  /** The job graph and options this worker runs: workers running others get no subtasks. */
  readonly identity: JobIdentity;
}

/** How long a member's heartbeats may be missing before the leader deploys without it (stretched by its reported lag). */
export function memberTimeoutMs(job: { readonly heartbeatTimeoutMs: number }): number {
  return Math.round(job.heartbeatTimeoutMs * 0.6);
}

export class LeaderSide {
  readonly runner: ClusterJobRunner;
  private readonly membership: MembershipView;
  private readonly deployer: ClusterDeployer;
  private rebalanceTimer: NodeJS.Timeout | undefined;
  private pendingCauses: string[] = [];
  private readonly rebalances: Rebalance[] = [];
  private currentEpoch = 0;
  /** Workers told that they run another job (once each). */
  private readonly refused = new Set<string>();

  constructor(private readonly o: LeaderSideOptions) {
    this.membership = new MembershipView(o.nc, o.names, { probeEveryMs: o.job.heartbeatIntervalMs, timeoutMs: memberTimeoutMs(o.job), log: o.log }, {
      onJoin: (w) => { if (w.id !== o.workerId) this.scheduleRebalance(`worker ${w.id} joined`); },
      onLeave: (w, reason) => this.onWorkerGone(w.id, reason),
    });
    this.deployer = new ClusterDeployer({
      nc: o.nc, names: o.names, workerId: o.workerId, log: o.log,
      ...(o.runnerOptions.clock ? { clock: o.runnerOptions.clock } : {}),
      workers: () => this.members(),
      record: async (assignment, restoreId, lineage) => {
        const epoch = o.lease.nextEpoch();
        const ok = await o.lease.appendAsLeader({ kind: "deploy", leader: o.workerId, epoch, assignment, lineage, ...(restoreId !== undefined ? { restoreId } : {}) });
        if (!ok) throw new WeirError(ErrorCode.Transport, `worker ${o.workerId} lost the job's lease before deploying epoch ${epoch}`);
        this.currentEpoch = epoch;
        const cause = this.pendingCauses.length ? this.pendingCauses.join("; ") : "deployment";
        this.pendingCauses = [];
        this.rebalances.push({ at: new Date().toISOString(), epoch, cause });
        if (this.rebalances.length > MAX_REBALANCES) this.rebalances.shift();
        return epoch;
      },
    });
    this.runner = new ClusterJobRunner(o.graph, o.job, o.nc, {
      ...o.runnerOptions,
      cluster: {
        deploy: (request) => this.deployer.deploy(request),
        statusOfWorkers: () => this.workersStatus(),
        restoreOnLeading: async (requested) => {
          const { restore, lineage, takeover } = await o.restoreOnLeading(requested);
          if (takeover) await this.carryOn(takeover);
          return { restore, ...(lineage !== undefined ? { lineage } : {}) };
        },
        parallelism: () => (o.job.reactive ? Math.min(o.job.maxParallelism, this.members().length * o.job.slotsPerWorker) : undefined),
        fenceCommit: async (checkpointId) => {
          const ok = await o.lease.appendAsLeader({ kind: "commit", leader: o.workerId, epoch: this.currentEpoch, checkpointId });
          if (!ok || !o.lease.isLeader) throw new WeirError(ErrorCode.Checkpoint, `checkpoint ${checkpointId} not committed: worker ${o.workerId} no longer leads the job`);
        },
      },
    });
  }

  get epoch(): number { return this.currentEpoch; }

  /**
   * A follower asks whether it runs in `epoch` (job-worker.ts, the write fence of its state): yes while
   * it is placed in this leader's current deployment; the answer counts as its heartbeat, so it is not
   * judged gone, and no epoch is deployed without it, sooner than a membership timeout from now.
   */
  confirmsMember(worker: string, epoch: number): boolean {
    return epoch === this.currentEpoch && this.deployer.assignment.has(worker) && this.membership.noteAlive(worker);
  }

  /** `released`: what this worker ran as a follower is closed (its state written back): deploy after it. */
  async start(released: Promise<void> = Promise.resolve()): Promise<void> {
    this.membership.start();
    // Workers already there announce themselves within a heartbeat: place over them from the start.
    await Promise.all([new Promise((r) => setTimeout(r, FIRST_PLACEMENT_WAIT_MS)), released]);
    await this.runner.start();
  }

  /** Ids of the live workers, this one included. */
  members(): string[] {
    return [...new Set([this.o.workerId, ...this.membership.members().filter((m) => !m.leaving && this.runsThisJob(m)).map((m) => m.id)])].sort();
  }

  /** A worker running another job graph or other options gets no subtasks, and is told why (it ends). */
  private runsThisJob(m: MemberView): boolean {
    const difference = m.identity === undefined ? undefined : identityDifference(this.o.identity, m.identity);
    if (difference === undefined) return true;
    if (!this.refused.has(m.id)) {
      this.refused.add(m.id);
      this.o.log(`worker ${m.id} is given no subtasks: it runs ${difference}`);
      const refuse: WorkerCommand = { kind: "refuse", epoch: this.currentEpoch, reason: difference };
      try { this.o.nc.publish(this.o.names.workerCommands(m.id), encodeCommand(refuse)); } catch { /* closed: it ends with the connection */ }
    }
    return false;
  }

  /** Another live worker was deployed (its heartbeat says an epoch): the run this leader takes over is live. */
  hasDeployedPeers(): boolean {
    return this.membership.members().some((m) => m.id !== this.o.workerId && !m.leaving && m.epoch >= 0);
  }

  localSubtasks(): string[] { return [...(this.deployer.assignment.get(this.o.workerId) ?? [])]; }

  private workersStatus(): { workers: WorkerSummary[]; epoch: number; worker: string; leader: string; rebalances: Rebalance[] } {
    const workerId = this.o.workerId;
    const views = new Map(this.membership.members().map((m) => [m.id, m]));
    const workers = this.members().map((id): WorkerSummary => {
      const m = views.get(id);
      return {
        id, host: m?.host ?? "", pid: m?.pid ?? process.pid, leader: id === workerId,
        subtasks: [...(this.deployer.assignment.get(id) ?? [])], heartbeatAgeMs: Math.round(m?.heartbeatAgeMs ?? 0), lagMs: Math.round(m?.lagMs ?? 0),
      };
    });
    return { workers, epoch: this.currentEpoch, worker: workerId, leader: workerId, rebalances: [...this.rebalances] };
  }

  /** Deposed: the new leader redeploys everything; this one stops without announcing an end. */
  async abandon(): Promise<void> {
    await this.close();
    await this.runner.abandon();
  }

  async close(): Promise<void> {
    if (this.rebalanceTimer) clearTimeout(this.rebalanceTimer);
    this.membership.stop();
  }

  /** A live run taken over: its history goes on here (restarts, failures, rebalances; takeover-history.ts). */
  private async carryOn(takeover: Takeover): Promise<void> {
    const h = carriedHistory(this.o.workerId, takeover, await previousStatus(this.o.nc, this.o.job.name, takeover));
    this.rebalances.unshift(...h.rebalances);
    this.rebalances.splice(0, Math.max(0, this.rebalances.length - MAX_REBALANCES));
    this.pendingCauses.unshift(h.cause);
    this.runner.carryOn(h);
    this.o.log(`carrying on the job's history: ${h.restarts} restart(s) so far; ${h.cause}`);
  }

  /**
   * Spares joined or left (workers beyond those the job places on): no subtask would move, so the job runs
   * on as deployed, without the checkpoint and restart of a rebalance (as Flink's standby TaskManagers).
   * New spares are told, as a deployment leaving them out would have told them (job-worker.ts).
   */
  private keepPlacement(wanted: readonly string[]): void {
    const before = new Set(this.deployer.placedOver);
    this.deployer.adoptWorkers(wanted);
    this.o.log(`${this.pendingCauses.join("; ")}: no subtask moves (the job places on ${this.deployer.assignment.size} worker(s)), so it runs on in epoch ${this.currentEpoch} without a rebalance`);
    this.pendingCauses = [];
    for (const w of wanted) if (!before.has(w) && !this.deployer.assignment.has(w)) void this.tellSpare(w);
  }

  private async tellSpare(worker: string): Promise<void> {
    const spare: WorkerCommand = { kind: "spare", epoch: this.currentEpoch };
    for (let attempt = 1; attempt <= SPARE_NOTICE_ATTEMPTS; attempt++) {
      try {
        await this.o.nc.request(this.o.names.workerCommands(worker), encodeCommand(spare), { timeout: SPARE_NOTICE_TIMEOUT_MS });
        return;
      } catch (e) {
        if (this.o.nc.isClosed()) return;
        if (attempt === SPARE_NOTICE_ATTEMPTS) this.o.log(`worker ${worker} was not told that it is a spare: ${messageOf(e)}`);
      }
    }
  }

  private onWorkerGone(id: string, reason: string): void {
    if (id === this.o.workerId) return;
    const placed = this.deployer.assignment.get(id)?.length ?? 0;
    if (reason === "left") {
      this.scheduleRebalance(`worker ${id} left`);
      return;
    }
    if (placed === 0) return;
    this.pendingCauses.push(`worker ${id} ${reason === "crashed" ? "crashed" : "missed its heartbeats"}`);
    this.runner.workerLost(new WeirError(ErrorCode.WorkerLost, `worker ${id} ${reason === "crashed" ? "is gone (its subscriptions vanished)" : "missed its heartbeats"}; its ${placed} subtask(s) restart on the remaining workers from the last checkpoint`));
  }

  private scheduleRebalance(cause: string): void {
    this.pendingCauses.push(cause);
    if (this.rebalanceTimer) return;
    this.rebalanceTimer = setTimeout(() => this.rebalance(), STABILIZATION_MS);
    this.rebalanceTimer.unref();
  }

  /** Once the workers settled: a rescale if they differ from the placement, when the job runs (else later). */
  private rebalance(): void {
    this.rebalanceTimer = undefined;
    const wanted = this.members();
    if (wanted.join(",") === this.deployer.placedOver.join(",")) { this.pendingCauses = []; return; }
    const state = this.runner.state;
    // With "auto" parallelism every join or leave resizes the job (until maxParallelism): no such shortcut.
    if (state === "running" && !this.o.job.reactive && this.deployer.placesAsNow(wanted)) { this.keepPlacement(wanted); return; }
    if (state === "running") { void this.runner.rescale(this.pendingCauses.join("; ")); return; }
    // Deploying or restarting: that deployment may already include them; look again in a moment.
    if (state === "deploying" || state === "restarting" || state === "failing" || state === "created") {
      this.rebalanceTimer = setTimeout(() => this.rebalance(), STABILIZATION_MS);
      this.rebalanceTimer.unref();
    }
  }
}
