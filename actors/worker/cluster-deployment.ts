// The leader's side of a deployment spread over workers: places the subtasks (runtime/cluster/placement.ts),
// records the placement with a new epoch in the job log (a fenced append: a deposed leader cannot
// deploy), and drives the remote workers' subtasks through their commands, routing their reports of this
// epoch to the job coordinator.

import type { NatsConnection, Subscription } from "@nats-io/transport-node";
import { describedFailure, messageOf } from "../../runtime/core/errors.ts";
import { ManualClock, type Clock } from "../../runtime/core/clock.ts";
import type { JobNames } from "../../runtime/core/names.ts";
import type { SubtaskSnapshot } from "../../runtime/checkpoint/metadata.ts";
import { placeSubtasks } from "../../runtime/cluster/placement.ts";
import type { SubtaskStatus } from "../subtask/status.ts";
import { remoteFailure, type DeploymentEvents, type RemotePart } from "../job/deployment.ts";
import type { DeployRequest } from "../job/job-runner-options.ts";
import { unpackSnapshot } from "./snapshot-wire.ts";
import { MissingReferenceError, PackedReferences } from "../../runtime/cluster/packed-json.ts";
import { decodeCommandReply, decodeReportText, encodeCommand, type WorkerCommand, type WorkerReport } from "./protocol.ts";
import { RemoteSubtask, RemoteWorker } from "./remote-subtask.ts";

/** Deploy and run wait this long for a worker's answer (opening restores state: it may take a while). */
const OPEN_TIMEOUT_MS = 120_000;
const CANCEL_TIMEOUT_MS = 5_000;
const ADVANCE_CLOCK_TIMEOUT_MS = 10_000;

export interface ClusterDeploymentOptions {
  readonly nc: NatsConnection;
  readonly names: JobNames;
  readonly workerId: string;
  /** The workers to place on (members alive now, this one included). */
  readonly workers: () => readonly string[];
  /** Appends the deployment to the job log as leader; resolves its epoch, rejects when deposed. */
  readonly record: (assignment: Record<string, string[]>, restoreId: number | undefined, lineage: string) => Promise<number>;
  readonly log: (message: string) => void;
  /** The job's processing time: a ManualClock's is handed to every worker (`weir run --manual-clock`). */
  readonly clock?: Clock;
}

export class ClusterDeployer {
  /** Where each subtask ran in the last deployment, so a placement keeps it there (warm caches). */
  private previous = new Map<string, string>();
  private lastAssignment: ReadonlyMap<string, readonly string[]> = new Map();
  private lastWorkers: readonly string[] = [];
  private lastVertices: ReadonlyArray<{ uid: string; name: string; parallelism: number }> = [];

  constructor(private readonly o: ClusterDeploymentOptions) {}

  /** Subtask ids per worker in the current deployment. */
  get assignment(): ReadonlyMap<string, readonly string[]> { return this.lastAssignment; }
  /** The workers the current deployment was placed over (some may run nothing). */
  get placedOver(): readonly string[] { return this.lastWorkers; }

  /** Whether the current deployment placed over `workers` would leave every subtask where it runs (only spares differ). */
  placesAsNow(workers: readonly string[]): boolean {
    if (this.lastVertices.length === 0) return false;
    const placed = [...placeSubtasks(this.lastVertices, this.withSelf(workers), this.previous)].filter(([, ids]) => ids.length > 0);
    return placed.length === this.lastAssignment.size && placed.every(([w, ids]) => ids.join(",") === this.lastAssignment.get(w)?.join(","));
  }

  /** The current deployment counts as placed over `workers` now (placesAsNow said no subtask moves). */
  adoptWorkers(workers: readonly string[]): void { this.lastWorkers = this.withSelf(workers); }

  private withSelf(workers: readonly string[]): string[] { return [...new Set([this.o.workerId, ...workers])].sort(); }

  async deploy(request: DeployRequest): Promise<RemotePart> {
    const { graph, events, restoreId, lineage } = request;
    const workers = this.withSelf(this.o.workers());
    const vertices = graph.vertices.map((v) => ({ uid: v.uid, name: v.name, parallelism: v.parallelism }));
    const placed = placeSubtasks(vertices, workers, this.previous);
    const assignment: Record<string, string[]> = Object.fromEntries([...placed].filter(([, ids]) => ids.length > 0));
    const epoch = await this.o.record(assignment, restoreId, lineage);
    this.previous = new Map(Object.entries(assignment).flatMap(([w, ids]) => ids.map((id) => [id, w] as const)));
    this.lastAssignment = new Map(Object.entries(assignment));
    this.lastWorkers = workers;
    this.lastVertices = vertices;
    const local = new Set(assignment[this.o.workerId] ?? []);
    const remoteWorkers = new Map<string, RemoteWorker>();
    const handles = new Map<string, RemoteSubtask>();
    for (const [w, ids] of Object.entries(assignment)) {
      if (w === this.o.workerId) continue;
      const rw = new RemoteWorker(w, epoch, (c) => this.send(w, c));
      remoteWorkers.set(w, rw);
      for (const id of ids) {
        const hash = id.lastIndexOf("#");
        const vertex = graph.vertices.find((v) => v.uid === id.slice(0, hash))!;
        handles.set(id, new RemoteSubtask(vertex, Number(id.slice(hash + 1)), rw));
      }
    }
    const sub = this.routeReports(epoch, handles, events);
    const all = async (what: string, command: (w: string) => WorkerCommand, timeoutMs: number, tolerateGone = false) => {
      await Promise.all([...remoteWorkers.keys()].map(async (w) => {
        let reply;
        try {
          reply = decodeCommandReply((await this.o.nc.request(this.o.names.workerCommands(w), encodeCommand(command(w)), { timeout: timeoutMs })).data, `worker ${w}'s reply`);
        } catch (e) {
          if (tolerateGone) return;
          throw remoteFailure(w, what, messageOf(e));
        }
        if (!reply.ok && !tolerateGone) throw remoteFailure(w, what, reply.error ?? "refused", reply.code);
      }));
    };
    return {
      attempt: `e${epoch}`,
      local,
      handles: [...handles.values()],
      open: () => all("deploy its subtasks", (w) => ({ kind: "deploy", epoch, leader: this.o.workerId, subtasks: assignment[w]!, restoreId: restoreId ?? null, lineage, parallelism: request.parallelism ?? null, clockMs: this.manualTime() }), OPEN_TIMEOUT_MS),
      run: (sources) => all(sources ? "run its sources" : "run its subtasks", () => ({ kind: "run", epoch, sources }), OPEN_TIMEOUT_MS),
      cancel: () => all("cancel", () => ({ kind: "cancel", epoch }), CANCEL_TIMEOUT_MS, true),
      advanceClock: (toMs) => all("advance its clock", () => ({ kind: "advance-clock", epoch, toMs }), ADVANCE_CLOCK_TIMEOUT_MS),
      close: () => sub.unsubscribe(),
    };
  }

  private manualTime(): number | null {
    return this.o.clock instanceof ManualClock ? this.o.clock.now() : null;
  }

  private send(worker: string, command: WorkerCommand): void {
    try {
      this.o.nc.publish(this.o.names.workerCommands(worker), encodeCommand(command));
    } catch { /* closed: the job is ending */ }
  }

  private routeReports(epoch: number, handles: ReadonlyMap<string, RemoteSubtask>, events: DeploymentEvents): Subscription {
    // The reports read so far, which workers pack later ones against (report-packing.ts).
    const references = new PackedReferences(512);
    return this.o.nc.subscribe(this.o.names.leaderReports, {
      callback: (err, msg) => {
        if (err) return;
        let r: WorkerReport;
        try {
          const read = decodeReportText(msg.data, `report on ${this.o.names.leaderReports}`, references);
          r = read.report;
          references.add(read.text);
        } catch (e) {
          // Packed against a report this leader never read (one of another leader's epoch, or lost): a
          // worker sends its status alone again within seconds, and an acknowledgement alone after the
          // checkpoint's abort.
          if (!(e instanceof MissingReferenceError)) this.o.log(messageOf(e));
          return;
        }
        if (r.epoch !== epoch) return;
        const h = "subtask" in r ? handles.get(r.subtask) : undefined;
        switch (r.kind) {
          case "ack": for (const s of r.snapshots) events.onAck(unpackSnapshot(s as unknown as SubtaskSnapshot), r.checkpointId); break;
          case "decline": events.onDecline(r.checkpointId, r.reason); break;
          case "failed": h?.markTerminal(); events.onFailed(h, describedFailure(`${r.subtask} on worker ${r.worker}: ${r.error}`, r)); break;
          case "finished": if (h && !h.isTerminal) { h.markTerminal(); events.onFinished(h); } break;
          case "input-finished": if (h) { h.markInputFinished(); events.onInputFinished(h); } break;
          case "active": events.onActive(r.after); break;
          case "dirty-budget": events.onDirtyBudgetExceeded(); break;
          case "reconnected":
            [...handles.values()].find((x) => x.worker.id === r.worker)?.worker.resend();
            events.onWorkerReconnected?.(r.worker);
            break;
          case "status":
            for (const st of r.subtasks) {
              const handle = handles.get(st.id);
              if (!handle) continue;
              handle.updateStatus(st as unknown as SubtaskStatus);
              if (st.activeAfter !== undefined) events.onActive(st.activeAfter);
              // A lost "failed" report must not leave the job waiting on a subtask that is gone.
              if (st.state.startsWith("failed") && !handle.isTerminal) {
                handle.markTerminal();
                events.onFailed(handle, new Error(`${st.id} on worker ${r.worker} failed${"error" in st ? `: ${String((st as { error?: unknown }).error)}` : ""}`));
              }
            }
            break;
        }
      },
    });
  }
}
