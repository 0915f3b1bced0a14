// The subtasks one worker runs for a leader in another process: it obeys the commands of the epoch it
// was deployed in (a deploy of a newer epoch replaces everything it runs), and reports what its subtasks
// do to the leader. The leader's own subtasks never pass through here (actors/job/deployment.ts).

import type { NatsConnection, Subscription } from "@nats-io/transport-node";
import { describeError, errorCodeOf, messageOf } from "../../runtime/core/errors.ts";
import type { JobGraph } from "../../runtime/graph/job-graph.ts";
import type { JobNames } from "../../runtime/core/names.ts";
import type { RestoreBundle } from "../../runtime/checkpoint/restore.ts";
import type { SubtaskSnapshot } from "../../runtime/checkpoint/metadata.ts";
import type { SubtaskStatus } from "../subtask/status.ts";
import { Subtask, type SubtaskDeps } from "../subtask/subtask.ts";
import type { DeadLetterPublisher } from "../subtask/dead-letters.ts";
import { ConnectionWatch } from "../job/connection-watch.ts";
import { ManualClock, systemClock } from "../../runtime/core/clock.ts";
import { decodeCommand, encodeMessage, type CommandReply, type WorkerCommand, type WorkerReport } from "./protocol.ts";
import type { LogFn } from "../../runtime/core/log.ts";
import { flushConnection } from "../../runtime/nats/flush.ts";
import { AckBatch } from "./ack-batch.ts";
import { packSnapshot } from "./snapshot-wire.ts";
import { ReportPacker } from "./report-packing.ts";

/** Everything a subtask needs that does not change between deployments. */
export type HostDeps = Omit<SubtaskDeps, "attempt" | "restore" | "deadLetters" | "onFinished" | "onFailed" | "onAck" | "onDecline" | "onInputFinished" | "onActive" | "onDirtyBudgetExceeded">;

export interface WorkerHostOptions {
  readonly workerId: string;
  readonly nc: NatsConnection;
  readonly names: JobNames;
  readonly graph: JobGraph;
  /** The job's graph at another default parallelism (a deployment of `parallelism: "auto"`). */
  readonly graphFor?: (parallelism: number) => JobGraph;
  readonly deps: HostDeps;
  readonly deadLetters: DeadLetterPublisher;
  /** The checkpoint a deployment restores (read from the job's checkpoint store). */
  readonly loadRestore: (id: number) => Promise<RestoreBundle | undefined>;
  /** Whether this worker may still act for `epoch` (its view of the leader is fresh). */
  readonly mayAct: (epoch: number) => boolean;
  /**
   * A command of the running epoch was refused because `mayAct` said no. Most commands are sent without
   * a reply (a checkpoint's trigger among them), so the leader never learns of the refusal: the worker has
   * to leave the epoch (become a new incarnation, placed anew) or the checkpoint waits for its timeout.
   */
  readonly onRefused?: (reason: string) => void;
  readonly log: LogFn;
  /** A deployment's subtasks run. */
  readonly onDeployed?: () => void;
  /** The leader gives this worker no subtasks: it runs another job graph or other options (`reason`). */
  readonly onRefusedJob?: (reason: string) => void;
  /** The leader keeps the job running as deployed in `epoch`, without subtasks on this worker (a spare). */
  readonly onSpare?: (epoch: number) => void;
  /** The NATS connection went down or came back (after having been down). */
  readonly onConnectionLost?: () => void;
  /** The final figures of subtasks a new deployment replaces, or that stop when this worker leads (JobRunnerOptions.onSubtasksRetired). */
  readonly onRetired?: (ended: readonly SubtaskStatus[]) => void;
}

const STATUS_INTERVAL_MS = 1000;
/** A failure's ErrorCode for the leader (CommandReply, the "failed" report), when it has one. */
const codeOf = (e: unknown): { code?: string } => { const code = errorCodeOf(e); return code ? { code } : {}; };

export class WorkerHost {
  private epoch = -1;
  private subtasks: Subtask[] = [];
  private sub: Subscription | undefined;
  private statusTimer: NodeJS.Timeout | undefined;
  private connection: ConnectionWatch | undefined;
  /** A disconnect may have lost frames, credits, reports and commands of the running epoch (see onReconnect). */
  private lostSince: number | undefined;
  /** Reports of the running epoch that the leader must not miss (finished, input finished, failed): sent again after a disconnect. */
  private sticky: WorkerReport[] = [];
  /** The newest checkpoint whose completion the subtasks were told: the leader sends it again after a disconnect. */
  private lastComplete = 0;
  /** Reports packed against earlier ones the leader holds (report-packing.ts). */
  private readonly packer = new ReportPacker();
  /** The subtasks' acknowledgements, one report per checkpoint (ack-batch.ts). */
  private readonly acks = new AckBatch(
    () => this.subtasks.filter((s) => !s.isTerminal).length,
    (checkpointId, snapshots) => this.report({
      kind: "ack", epoch: this.epoch, worker: this.o.workerId, checkpointId,
      snapshots: snapshots.map((s) => packSnapshot(s) as unknown as Record<string, unknown>),
    }),
  );

  private deployedAt: number | undefined;

  constructor(private readonly o: WorkerHostOptions) {}

  get currentEpoch(): number { return this.epoch; }
  /** The parallelism the leader deployed this worker at, when it chose one (`parallelism: "auto"`). */
  get deployedParallelism(): number | undefined { return this.deployedAt; }
  get running(): readonly Subtask[] { return this.subtasks; }
  /** Since when (epoch ms) this worker's NATS connection is down; undefined while it is up. */
  get natsDisconnectedSince(): number | undefined { return this.connection?.disconnectedSince; }

  start(): void {
    this.sub = this.o.nc.subscribe(this.o.names.workerCommands(this.o.workerId), {
      callback: (err, msg) => {
        if (err) return;
        let command: WorkerCommand;
        try {
          command = decodeCommand(msg.data, `command to worker ${this.o.workerId}`);
        } catch (e) {
          this.o.log(messageOf(e));
          if (msg.reply) msg.respond(encodeMessage({ ok: false, error: messageOf(e) } satisfies CommandReply));
          return;
        }
        void this.handle(command).then(
          (reply) => { if (msg.reply) msg.respond(encodeMessage(reply)); },
          (e) => { if (msg.reply) msg.respond(encodeMessage({ ok: false, error: describeError(e), ...codeOf(e) } satisfies CommandReply)); },
        );
      },
    });
    this.statusTimer = setInterval(() => this.reportStatus(), STATUS_INTERVAL_MS);
    this.statusTimer.unref();
    this.connection = new ConnectionWatch(this.o.nc, systemClock, {
      onDisconnect: () => {
        this.o.onConnectionLost?.();
        if (!this.subtasks.some((s) => !s.isTerminal) || this.lostSince !== undefined) return;
        this.lostSince = this.epoch;
        this.o.log(`NATS connection lost: epoch ${this.epoch} goes on; once it is back its channels are probed (a lost frame restarts the job from the last checkpoint)`);
      },
      onReconnect: () => { this.o.onConnectionLost?.(); this.onReconnect(); },
    });
  }

  /**
   * Back after a disconnect: what this worker published meanwhile may be lost (the client drops its
   * outbound buffer), and what the leader sent it was. The job goes on as in one process: each subtask
   * grants its credits again and probes its output channels (a consumer that finds a frame missing fails,
   * and the job restarts from its last checkpoint); the reports the leader must not miss go again; and the
   * leader, told, sends its last completion again and aborts a checkpoint in flight (its triggers or acks
   * may be lost).
   */
  private onReconnect(): void {
    const epoch = this.lostSince;
    this.lostSince = undefined;
    if (epoch === undefined || epoch !== this.epoch || this.subtasks.length === 0) return;
    this.o.log(`NATS connection back: epoch ${epoch} goes on`);
    this.report({ kind: "reconnected", epoch, worker: this.o.workerId });
    this.resume();
  }

  /** After a disconnect (this worker's or the leader's): credits, channel probes, the sticky reports and a status again. */
  private resume(): void {
    this.packer.reset();
    for (const x of this.subtasks) x.onReconnected();
    for (const r of this.sticky) this.report(r);
    this.reportStatus();
  }

  /**
   * Cancels what runs (fenced, leaving, or this worker now leads and deploys its own); resolves once their
   * operators and state are closed (a job without checkpoints writes its state to KV then).
   */
  cancelAll(why: string): Promise<void> {
    if (this.subtasks.some((s) => !s.isTerminal)) this.o.log(`cancelling the subtasks of epoch ${this.epoch}: ${why}`);
    return Promise.all(this.subtasks.map((s) => s.cancel())).then(() => {});
  }

  /** This worker leads now: what it ran as a follower is over (its figures retired, no longer listed). */
  retireAll(): void {
    this.o.onRetired?.(this.subtasks.map((s) => s.status()));
    this.subtasks = [];
  }

  stop(): void {
    this.connection?.stop();
    void this.cancelAll("the worker stops");
    this.sub?.unsubscribe();
    if (this.statusTimer) clearInterval(this.statusTimer);
    this.acks.clear();
  }

  private async handle(c: WorkerCommand): Promise<CommandReply> {
    if (c.kind === "deploy") return this.deploy(c);
    if (c.kind === "refuse") { this.o.onRefusedJob?.(c.reason); return { ok: true }; }
    if (c.kind === "spare") { this.o.onSpare?.(c.epoch); return { ok: true }; }
    if (c.epoch !== this.epoch) return { ok: false, error: `worker ${this.o.workerId} runs epoch ${this.epoch}, not ${c.epoch}` };
    if (!this.o.mayAct(c.epoch)) {
      const error = `worker ${this.o.workerId} is fenced off epoch ${c.epoch}`;
      this.o.onRefused?.(`it refused the leader's "${c.kind}" of epoch ${c.epoch}: no word from the leader for a lease`);
      return { ok: false, error };
    }
    const find = (id: string) => this.subtasks.find((s) => s.id === id);
    switch (c.kind) {
      case "run":
        for (const s of this.subtasks) if (s.isSource === c.sources) s.run();
        await flushConnection(this.o.nc);
        if (c.sources) this.o.onDeployed?.();
        return { ok: true };
      case "trigger": for (const id of c.subtasks) find(id)?.triggerCheckpoint(c.barrier, c.pause); break;
      case "complete":
        if (c.checkpointId <= this.lastComplete) break; // sent again after a disconnect
        this.lastComplete = c.checkpointId;
        this.packer.completed(c.checkpointId);
        for (const s of this.subtasks) s.notifyCheckpointComplete(c.checkpointId);
        break;
      case "abort":
        this.packer.aborted();
        for (const s of this.subtasks) s.notifyCheckpointAborted(c.checkpointId);
        break;
      case "stop-sources": for (const s of this.subtasks) if (s.isSource) s.requestStop(); break;
      case "release": for (const s of this.subtasks) s.release(); break;
      case "fail": find(c.subtask)?.injectFailure(c.reason); break;
      case "regrant": this.resume(); break;
      case "advance-clock": {
        const clock = this.o.deps.clock;
        if (!(clock instanceof ManualClock)) return { ok: false, error: `worker ${this.o.workerId} runs on the system clock` };
        clock.advanceTo(c.toMs);
        return { ok: true };
      }
      case "cancel": {
        // Answered once the subtasks' state is closed (the leader waits CANCEL_TIMEOUT_MS at most).
        await this.cancelAll(`the leader cancels epoch ${c.epoch}`);
        await new Promise((r) => setImmediate(r));
        return { ok: true };
      }
    }
    return { ok: true };
  }

  private async deploy(c: Extract<WorkerCommand, { kind: "deploy" }>): Promise<CommandReply> {
    if (c.epoch <= this.epoch) return { ok: false, error: `worker ${this.o.workerId} already runs epoch ${this.epoch}` };
    // The new subtasks must not read state the old ones are still writing back.
    const closed = this.cancelAll(`epoch ${c.epoch} replaces it`);
    this.epoch = c.epoch;
    await closed;
    // A manual clock catches up with the leader's (this worker started later, or missed an advance).
    const clock = this.o.deps.clock;
    if (c.clockMs !== null && clock instanceof ManualClock) clock.advanceTo(c.clockMs);
    const restore = c.restoreId === null ? undefined : await this.o.loadRestore(c.restoreId);
    const epoch = c.epoch;
    this.sticky = [];
    this.lastComplete = 0;
    this.acks.clear();
    this.packer.reset();
    const report = (r: WorkerReport) => this.report(r);
    const stick = (r: WorkerReport) => { this.sticky.push(r); this.report(r); };
    const worker = this.o.workerId;
    const graph = this.o.graphFor && c.parallelism !== null ? this.o.graphFor(c.parallelism) : this.o.graph;
    this.deployedAt = c.parallelism ?? undefined;
    const deps: Omit<SubtaskDeps, "deadLetters"> = {
      ...this.o.deps,
      graph,
      attempt: `e${epoch}`,
      ...(restore ? { restore } : {}),
      // Its final figures first: the leader may end the job, and take its last status, on "finished".
      onFinished: (s) => { this.reportStatus(); stick({ kind: "finished", epoch, worker, subtask: s.id }); this.acks.recheck(); },
      // Logged here, where the error itself is (with its cause chain); the leader gets its one line.
      onFailed: (s, e) => {
        this.o.log(`subtask ${s.id} failed: ${describeError(e)}`, { level: "error", subtask: s.id, err: e });
        stick({ kind: "failed", epoch, worker, subtask: s.id, error: describeError(e), ...codeOf(e) });
        this.acks.recheck();
      },
      onAck: (_s, snapshot: SubtaskSnapshot, id) => { if (this.epoch === epoch) this.acks.add(id, snapshot); },
      onDecline: (s, id, reason) => { this.acks.flush(id); report({ kind: "decline", epoch, worker, subtask: s.id, checkpointId: id, reason }); },
      onInputFinished: (s) => stick({ kind: "input-finished", epoch, worker, subtask: s.id }),
      // Status reports repeat it (SubtaskStatus.activeAfter), should this one be lost.
      onActive: (s, after) => report({ kind: "active", epoch, worker, subtask: s.id, after }),
      onDirtyBudgetExceeded: () => report({ kind: "dirty-budget", epoch, worker }),
    };
    const subtasks: Subtask[] = [];
    for (const id of c.subtasks) {
      const hash = id.lastIndexOf("#");
      const vertex = graph.vertices.find((v) => v.uid === id.slice(0, hash));
      const index = Number(id.slice(hash + 1));
      if (!vertex || !Number.isInteger(index) || index < 0 || index >= vertex.parallelism) {
        return { ok: false, error: `worker ${worker}: no subtask ${id} in this job's graph (do all workers run the same job file and parallelism?)` };
      }
      subtasks.push(new Subtask(vertex, index, { ...deps, deadLetters: this.o.deadLetters.forSubtask(c.lineage) }));
    }
    this.o.onRetired?.(this.subtasks.map((s) => s.status()));
    this.subtasks = subtasks;
    for (const s of subtasks) s.setup();
    await flushConnection(this.o.nc);
    for (const s of [...subtasks].reverse()) await s.open();
    this.reportStatus();
    return { ok: true };
  }

  private report(r: WorkerReport): void {
    if (r.epoch !== this.epoch) return;
    try {
      this.o.nc.publish(this.o.names.leaderReports, this.packer.pack(r));
    } catch { /* closed: the leader will miss this worker's heartbeats */ }
  }

  private reportStatus(): void {
    if (this.subtasks.length === 0) return;
    this.report({
      kind: "status", epoch: this.epoch, worker: this.o.workerId,
      subtasks: this.subtasks.map((s) => s.status()),
    });
  }
}
