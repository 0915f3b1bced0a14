// The checkpoint coordinator: triggers a checkpoint every interval (one in flight), injects barriers at
// the sources, collects every subtask's acknowledgement, commits the metadata atomically (store.ts), then
// tells the subtasks (state deltas may be materialized, sinks commit their staged output). Old
// checkpoints beyond the retention are deleted. The decisions live in actors/checkpoint/machine.ts.

import { createActor, fromPromise, type Actor } from "xstate";
import { checkpointMachine } from "./machine.ts";
import { ErrorCode, WeirError, describeError, messageOf } from "../../runtime/core/errors.ts";
import type { CheckpointBarrier } from "../../runtime/transport/frames.ts";
import { summarize, type CheckpointKind, type CheckpointMetadata, type CheckpointSummary, type SubtaskSnapshot } from "../../runtime/checkpoint/metadata.ts";
import { LatestMovedError, type CheckpointStore } from "../../runtime/checkpoint/store.ts";
import { systemClock, type Clock } from "../../runtime/core/clock.ts";
import { IdleCheckpoints } from "./idle-checkpoints.ts";
import { CheckpointScheduler } from "./scheduler.ts";
import { CheckpointStoreLoss } from "./store-loss.ts";
import type { LogFn } from "../../runtime/core/log.ts";
import { DurationHistogram, type DurationCounts } from "../../runtime/checkpoint/durations.ts";

/**
 * Checkpoint ids reserved at a time (one KV read and CAS write per block). One keeps ids dense across
 * restarts (a crash costs no gap in the listing) for ~1 ms per checkpoint.
 */
export const ID_BLOCK = 1;

export interface CheckpointTarget {
  readonly id: string;
  readonly isSource: boolean;
  /** Input ended: it acknowledges with its final state when asked directly (no barrier reaches it). */
  readonly isWaitingForFinalCheckpoint: boolean;
  /** `pauseAfter`: a source reads nothing after this barrier (a rescale restarts from this checkpoint). */
  triggerCheckpoint(barrier: CheckpointBarrier, pauseAfter?: boolean): void;
  notifyCheckpointComplete(id: number): void;
  notifyCheckpointAborted(id: number): void;
  /** What it is doing or waiting on, for the line a checkpoint timeout logs (local subtasks). */
  describeWait?(): string;
}

export interface CoordinatorOptions {
  readonly job: string;
  readonly store: CheckpointStore;
  /** First id of the block reserved for this run (store.reserveIds), and the block's last one. */
  readonly firstId: number;
  readonly reservedThrough: number;
  readonly latestRevision: number;
  readonly maxParallelism: number;
  readonly parallelism: Readonly<Record<string, number>>;
  readonly timeoutMs: number;
  /** Checkpoint timeouts in a row tolerated (tolerableCheckpointTimeouts); the next calls onStalled. */
  readonly tolerableTimeouts?: number;
  /** More checkpoint timeouts in a row than tolerated: nothing completes, the job should restart. */
  readonly onStalled?: (e: Error) => void;
  readonly retain: number;
  readonly log: LogFn;
  readonly inspect?: (event: unknown) => void;
  /** Runs the checkpoint timeout and the periodic schedule (default: real time). */
  readonly clock?: Clock;
  /** Called between writing the metadata and moving `latest` (workers: the leader's fenced log append). */
  readonly fence?: (checkpointId: number) => Promise<void>;
  /**
   * A commit was refused because `latest` is not where this run left it (LatestMovedError): every later
   * one would be too, so the job must not go on as if checkpoints were merely failing.
   */
  readonly onCommitRefused?: (e: Error) => void;
  /** The run's lineage, recorded with each checkpoint (metadata.ts): asked at each commit, as a restart may change it. */
  readonly lineage?: () => string;
}

export interface CheckpointStats {
  readonly completed: number;
  readonly aborted: number;
  /** Periodic checkpoints skipped because the job was at rest (nothing happened since the last one). */
  readonly skipped?: number;
  readonly inFlight?: number; // the id of the checkpoint in flight
  readonly lastCompleted?: CheckpointSummary;
  readonly lastFailure?: string;
  /** Durations of the checkpoints completed by this coordinator, in buckets (for /metrics). */
  readonly durations?: DurationCounts;
}

/** How long a stop waits for a commit under way. */
const STOP_COMMIT_WAIT_MS = 5000;

export class CheckpointCoordinator {
  readonly actor: Actor<typeof checkpointMachine>;
  private acks = new Map<string, SubtaskSnapshot>();
  /** Acknowledgements of the checkpoint in flight that found their subtask quiet. */
  private quietAcks = 0;
  private readonly idleness = new IdleCheckpoints();
  private barrier: CheckpointBarrier | undefined;
  private idleWaiters: Array<() => void> = [];
  /** Deleting old checkpoints runs behind commits, one at a time; stop() waits for it. */
  private housekeeping: Promise<void> = Promise.resolve();
  /** The commit in flight: one a stop came during still completes and queues its deletes (stop() waits for both). */
  private committing: Promise<void> = Promise.resolve();
  private swept = false;
  private triggeredAt = 0;
  private kind: CheckpointKind = "checkpoint";
  /** The checkpoint in flight pauses the sources after its barrier (see trigger). */
  private pausing = false;
  private parallelism: Readonly<Record<string, number>>;
  private revision: number;
  private lastSummary: CheckpointSummary | undefined;
  private readonly durations = new DurationHistogram();
  private readonly waiters = new Map<number, { resolve: (id: number) => void; reject: (e: Error) => void }>();
  private nextWaiters: Array<{ resolve: (id: number) => void; reject: (e: Error) => void }> = [];
  private reservedThrough: number;
  private reserving: Promise<void> | undefined;
  private scheduler: CheckpointScheduler | undefined;
  /** Bumped by abortPending (with why): a trigger that was reserving its id meanwhile is dropped. */
  private aborts = 0;
  /** Periodic checkpoints' failures: logged, and the job failed once its checkpoint store stays gone. */
  private readonly storeLoss: CheckpointStoreLoss;
  private abortReason = "";

  constructor(private readonly targets: () => readonly CheckpointTarget[], private readonly o: CoordinatorOptions) {
    this.revision = o.latestRevision;
    this.parallelism = o.parallelism;
    this.reservedThrough = o.reservedThrough;
    this.storeLoss = new CheckpointStoreLoss(o.job, () => (o.clock ?? systemClock).now(), o.log, (e) => o.onStalled?.(e));
    this.actor = createActor(checkpointMachine.provide({
      actions: {
        injectBarriers: (_, p) => this.inject(p.checkpointId, p.kind),
        notifyComplete: (_, p) => this.notifyComplete(p.checkpointId),
        notifyAborted: (_, p) => this.notifyAborted(p.checkpointId, p.reason),
        reportTimeouts: (_, p) => {
          const e = new WeirError(ErrorCode.Checkpoint, `${p.timeouts} checkpoint(s) in a row timed out with nothing completed (tolerableCheckpointTimeouts: ${o.tolerableTimeouts}): the job restarts from its last checkpoint`);
          queueMicrotask(() => this.o.onStalled?.(e));
        },
      },
      actors: { commit: fromPromise<void, { checkpointId: number }>(({ input }) => (this.committing = this.commit(input.checkpointId))) },
    }), {
      id: `checkpoint:${o.job}`,
      systemId: `checkpoint:${o.job}`,
      input: { firstId: o.firstId, timeoutMs: o.timeoutMs, tolerableTimeouts: o.tolerableTimeouts ?? Number.POSITIVE_INFINITY },
      ...(o.inspect ? { inspect: o.inspect } : {}),
      ...(o.clock ? { clock: o.clock } : {}),
    });
    this.actor.subscribe((snap) => {
      if (snap.value !== "idle" || this.idleWaiters.length === 0) return;
      const ws = this.idleWaiters;
      this.idleWaiters = [];
      for (const w of ws) queueMicrotask(w);
    });
    this.actor.start();
  }

  /**
   * A checkpoint is in flight, or about to be: reserving its id (a KV round trip) comes before the actor
   * hears of it, and a second trigger meanwhile would be refused as "already in progress".
   */
  get busy(): boolean { return this.reserving !== undefined || this.actor.getSnapshot().value !== "idle"; }

  /** The revision of `latest` as this run last wrote it (or read it at the start); 0: none. */
  get latestRevision(): number { return this.revision; }

  /** The job restarts from `latest` read at `revision` (not behind ours): the next commit follows it. */
  restartFrom(revision: number): void { if (revision >= this.revision) this.revision = revision; }

  /** The barrier of the checkpoint in flight, if any. */
  pendingBarrier(): CheckpointBarrier | undefined {
    return this.actor.getSnapshot().context.pendingId === undefined ? undefined : this.barrier;
  }

  hasAcked(subtaskId: string): boolean { return this.acks.has(subtaskId); }

  /** Resolves when no checkpoint is in flight. */
  async idle(): Promise<void> {
    while (this.busy) {
      // The trigger that reserves is chained on `reserving` before us: it has started when we wake.
      if (this.reserving) await this.reserving.catch(() => {});
      else await new Promise<void>((resolve) => this.idleWaiters.push(resolve));
    }
  }

  /** The next checkpoints are of a deployment at another parallelism (`parallelism: "auto"`). */
  resize(parallelism: Readonly<Record<string, number>>): void { this.parallelism = parallelism; }

  /**
   * Aborts the checkpoint in flight (the job restarts or ends), one still reserving its id, and those
   * queued behind it: their barriers would go to subtasks that are gone (the new ones never acknowledge).
   */
  abortPending(reason: string): void {
    this.aborts++;
    this.abortReason = reason;
    const queued = this.nextWaiters;
    this.nextWaiters = [];
    for (const w of queued) w.reject(new Error(`the queued checkpoint was dropped: ${reason}`));
    const id = this.actor.getSnapshot().context.pendingId;
    if (id !== undefined) this.actor.send({ type: "DECLINE", checkpointId: id, reason });
  }

  /**
   * Periodic checkpoints: every `intervalMs`, or every `duringBacklogMs` while `inBacklog()` (0: none
   * then), when none is in flight and `allowed()`; until stop().
   */
  schedule(o: { intervalMs: number; duringBacklogMs: number; whileIdleMs: number; inBacklog: () => boolean; allowed: () => boolean }): void {
    this.scheduler?.stop();
    this.scheduler = new CheckpointScheduler(this.o.clock ?? systemClock, {
      intervalMs: o.intervalMs,
      duringBacklogMs: o.duringBacklogMs,
      inBacklog: o.inBacklog,
      mayTrigger: () => !this.busy && o.allowed(),
      trigger: () => this.storeLoss.watch(this.trigger("checkpoint", { ifIdle: true })),
      whileIdleMs: o.whileIdleMs,
      isIdle: () => {
        const targets = this.targets();
        return !targets.some((t) => t.isWaitingForFinalCheckpoint) && this.idleness.isIdle(targets);
      },
      skipped: () => { this.idleness.skipped++; },
    });
  }

  /**
   * A subtask did something after its snapshot of `afterCheckpoint`, which had found it quiet: the job is
   * not at rest (idle-checkpoints.ts).
   */
  noteActivity(afterCheckpoint: number): void {
    this.idleness.activity(afterCheckpoint);
  }

  /**
   * Starts a checkpoint, after the one in flight if any (as Flink queues a requested checkpoint behind
   * the running one); resolves with its id when it completes. With `ifIdle` (the periodic and early
   * ones: the next interval comes anyway) a checkpoint in flight refuses it instead. With
   * `pauseSources`, sources read nothing after its barrier: a rescale restarting from it reads no record
   * twice (the job is torn down after it, whether it completes or not).
   */
  trigger(kind: CheckpointKind = "checkpoint", options: { pauseSources?: boolean; ifIdle?: boolean } = {}): Promise<number> {
    return new Promise((resolve, reject) => {
      if (this.busy) {
        if (options.ifIdle) reject(new Error("a checkpoint is already in progress"));
        else this.nextWaiters.push({ resolve: () => resolve(this.trigger(kind, options)), reject });
        return;
      }
      const id = this.actor.getSnapshot().context.nextId;
      if (id > this.reservedThrough) {
        // The run's block of ids is used up: reserve the next block first.
        // The job may restart while the id is reserved (a KV round trip, long during a NATS outage): the
        // trigger then belongs to subtasks that are gone, and the new ones, not running yet, would never
        // acknowledge it (seen as a checkpoint timing out with no acknowledgement at all after a restart).
        const aborts = this.aborts;
        // Either way it is an aborted checkpoint (counted, never left "in flight"); a reserved id is not reused.
        this.reserveMore(id - 1).then(() => {
          if (aborts === this.aborts) return this.trigger(kind, options);
          const reason = `checkpoint ${id} aborted while its id was reserved: ${this.abortReason}`;
          this.actor.send({ type: "ABANDON", reason, consumed: true });
          this.wakeNext();
          throw new WeirError(ErrorCode.Checkpoint, reason);
        }, (e: unknown) => {
          const reason = `checkpoint ${id}: reserving ids in the checkpoint bucket failed: ${messageOf(e)}`;
          this.actor.send({ type: "ABANDON", reason, consumed: false });
          this.wakeNext(); // one queued behind this trigger tries again rather than wait for a later one
          throw new WeirError(ErrorCode.Checkpoint, reason, { cause: e });
        }).then(resolve, reject);
        return;
      }
      this.waiters.set(id, { resolve, reject });
      this.pausing = options.pauseSources ?? false;
      this.actor.send({ type: "TRIGGER", kind, expectedAcks: this.targets().length });
    });
  }

  private reserveMore(lastUsed: number): Promise<void> {
    this.reserving ??= this.o.store.reserveIds(lastUsed, ID_BLOCK, this.reservedThrough)
      .then((r) => { this.reservedThrough = r.last; })
      .finally(() => { this.reserving = undefined; });
    return this.reserving;
  }

  ack(snapshot: SubtaskSnapshot, checkpointId: number): void {
    if (checkpointId !== this.actor.getSnapshot().context.pendingId) return;
    const key = `${snapshot.vertexUid}#${snapshot.index}`;
    if (this.acks.has(key)) return;
    if (snapshot.quiet !== undefined) {
      // Told to the coordinator, not stored with the checkpoint.
      const { quiet, ...stored } = snapshot;
      if (quiet) this.quietAcks++;
      snapshot = stored;
    }
    this.acks.set(key, snapshot);
    this.actor.send({ type: "ACK", checkpointId });
  }

  decline(checkpointId: number, reason: string): void {
    this.actor.send({ type: "DECLINE", checkpointId, reason });
  }

  stats(): CheckpointStats {
    const c = this.actor.getSnapshot().context;
    return {
      completed: c.completed,
      aborted: c.aborted,
      skipped: this.idleness.skipped,
      ...(c.pendingId !== undefined ? { inFlight: c.pendingId } : {}),
      ...(this.lastSummary ? { lastCompleted: this.lastSummary } : {}),
      ...(c.lastFailure ? { lastFailure: c.lastFailure } : {}),
      durations: this.durations.snapshot(),
    };
  }

  async stop(): Promise<void> {
    this.scheduler?.stop();
    this.actor.send({ type: "STOP" });
    for (const w of [...this.waiters.values(), ...this.nextWaiters]) w.reject(new Error("the job stopped before the checkpoint completed"));
    this.waiters.clear();
    this.nextWaiters = [];
    // A commit under way when the stop came still lands: wait (within a bound, as during an outage its
    // retries could take 30 s) for it and the deletes it queues, so none is cut off by the connection closing.
    let timer: ReturnType<typeof setTimeout> | undefined;
    await Promise.race([this.committing.catch(() => {}), new Promise<void>((r) => { timer = setTimeout(r, STOP_COMMIT_WAIT_MS); })]);
    clearTimeout(timer);
    await this.housekeeping;
  }

  // ------------------------------------------------------------------ effects

  private inject(checkpointId: number, kind: CheckpointKind): void {
    const targets = this.targets();
    this.acks = new Map();
    this.quietAcks = 0;
    this.triggeredAt = Date.now();
    this.kind = kind;
    const barrier: CheckpointBarrier = { id: checkpointId, timestamp: this.triggeredAt, kind };
    this.barrier = barrier;
    const pause = this.pausing;
    queueMicrotask(() => {
      // Sources start it; subtasks whose input already ended snapshot their final state directly.
      for (const t of targets) if (t.isSource || t.isWaitingForFinalCheckpoint) t.triggerCheckpoint(barrier, pause && t.isSource);
    });
  }

  /** The invoked commit: resolves once the metadata is written; a rejection aborts the checkpoint. */
  private async commit(checkpointId: number): Promise<void> {
    const metadata: CheckpointMetadata = {
      job: this.o.job,
      id: checkpointId,
      kind: this.kind,
      triggeredAt: this.triggeredAt,
      completedAt: Date.now(),
      maxParallelism: this.o.maxParallelism,
      parallelism: this.parallelism,
      subtasks: [...this.acks.values()],
      ...(this.o.lineage ? { lineage: this.o.lineage() } : {}),
    };
    try {
      const fence = this.o.fence;
      this.revision = await this.o.store.commit(metadata, this.revision, this.o.retain, fence ? () => fence(checkpointId) : undefined);
    } catch (e) {
      this.o.log(describeError(e), { level: "warn", checkpoint: checkpointId, err: e });
      if (e instanceof LatestMovedError) queueMicrotask(() => this.o.onCommitRefused?.(e));
      throw new Error(messageOf(e), { cause: e });
    }
    this.lastSummary = summarize(metadata);
    this.durations.observe(this.lastSummary.durationMs);
    this.housekeeping = this.housekeeping.then(() => this.retain()).catch((e) => this.o.log(`deleting old checkpoints failed: ${messageOf(e)}`));
  }

  private notifyComplete(checkpointId: number): void {
    const targets = this.targets();
    this.idleness.completed(checkpointId, this.quietAcks === targets.length && this.acks.size === targets.length, targets);
    for (const t of targets) t.notifyCheckpointComplete(checkpointId);
    this.waiters.get(checkpointId)?.resolve(checkpointId);
    this.waiters.delete(checkpointId);
    this.wakeNext();
  }

  private notifyAborted(checkpointId: number, reason: string): void {
    // A timeout names who never acknowledged: where the barrier or the snapshot got stuck.
    const missing = reason === "timeout" ? this.targets().map((t) => t.id).filter((id) => !this.acks.has(id)) : [];
    const who = missing.length > 0 ? ` (no acknowledgement from ${missing.slice(0, 8).join(", ")}${missing.length > 8 ? ` and ${missing.length - 8} more` : ""})` : "";
    this.o.log(`checkpoint ${checkpointId} aborted: ${reason}${who}`, { level: "warn", checkpoint: checkpointId });
    for (const t of this.targets().filter((x) => missing.includes(x.id) && x.describeWait).slice(0, 8)) {
      this.o.log(`checkpoint ${checkpointId}: ${t.id} is ${t.describeWait!()}`, { level: "warn", checkpoint: checkpointId });
    }
    for (const t of this.targets()) t.notifyCheckpointAborted(checkpointId);
    this.waiters.get(checkpointId)?.reject(new Error(`checkpoint ${checkpointId} aborted: ${reason}`));
    this.waiters.delete(checkpointId);
    this.wakeNext();
  }

  private wakeNext(): void {
    const next = this.nextWaiters.shift();
    if (next) queueMicrotask(() => next.resolve(0));
  }

  /**
   * Keeps the newest `retain` checkpoints (savepoints are kept until deleted by hand): deletes the ids the
   * commit dropped, and once per run sweeps what an earlier run's crash left behind.
   */
  private async retain(): Promise<void> {
    await this.o.store.deleteExpired();
    if (this.swept) return;
    this.swept = true;
    const n = await this.o.store.sweep();
    if (n > 0) this.o.log(`deleted ${n} checkpoint(s) an earlier run left behind`);
  }
}
