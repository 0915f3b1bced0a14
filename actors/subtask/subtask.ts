// One operator subtask: its lifecycle actor (actors/subtask/machine.ts, the only record of where it is),
// its input gate and mailbox, its operator chain and its outputs. Records flow through plain functions
// in the run loops (subtask/input-loop.ts, subtask/source-loop.ts); the actor only hears about lifecycle
// changes and answers, from its snapshot, what the loops and the job ask (ended? stop requested? outputs
// ended?). This class performs the effects: the ones the machine names (its provided actions) and the
// steps of finishing, each reported back as an event.

import { isKeyedOperator } from "../../runtime/graph/stream-graph.ts";
import { KeyGroupRange } from "../../state/key-groups.ts";
import { StateWriteConflictError } from "../../state/errors.ts";
import type { SourceReader } from "../../runtime/contracts/connectors.ts";
import { sortsBacklog } from "../../runtime/contracts/job-options.ts";
import { ErrorCode, WeirError, describeError, connectorError } from "../../runtime/core/errors.ts";
import type { JobVertex } from "../../runtime/graph/job-graph.ts";
import { InputsAttributes } from "../../runtime/transport/attributes-valve.ts";
import { BufferDebloater } from "../../runtime/transport/buffer-debloater.ts";
import { preview } from "../../runtime/core/preview.ts";
import { MIN_WATERMARK, type CheckpointBarrier } from "../../runtime/transport/frames.ts";
import { InputGate, failOnGap } from "../../runtime/transport/input-gate.ts";
import { InputsWatermark } from "../../runtime/transport/watermark-valve.ts";
import { buildChain, type OperatorChain } from "./chain.ts";
import { SubtaskActivity } from "./activity.ts";
import { SubtaskCheckpointer } from "./checkpointer.ts";
import type { SubtaskSnapshot } from "../../runtime/checkpoint/metadata.ts";
import { SubtaskContexts, type ContextDeps } from "./contexts.ts";
import { inputChannels } from "./input-channels.ts";
import { runInput } from "./input-loop.ts";
import { SubtaskLifecycle } from "./lifecycle.ts";
import { SubtaskOutputs } from "./outputs.ts";
import { flushNow } from "./pacing.ts";
import type { SubtaskCounters, SubtaskParts } from "./parts.ts";
import { runSource } from "./source-loop.ts";
import { subtaskStatus, type SubtaskStatus } from "./status.ts";
import { describeWait } from "./wait-report.ts";
import { flushConnection } from "../../runtime/nats/flush.ts";

export type { StateBackendRequest } from "./contexts.ts";
export type { SubtaskStatus } from "./status.ts";

export interface SubtaskDeps extends ContextDeps {
  readonly inspect?: (event: unknown) => void;
  readonly onFinished: (s: Subtask) => void;
  readonly onFailed: (s: Subtask, error: unknown) => void;
  readonly onAck: (s: Subtask, snapshot: SubtaskSnapshot, checkpointId: number) => void;
  readonly onDecline: (s: Subtask, checkpointId: number, reason: string) => void;
  /**
   * With checkpoints on, a subtask whose input ended waits (FLIP-147) until a checkpoint holding its final
   * state completes; this tells the coordinator it is waiting.
   */
  readonly onInputFinished: (s: Subtask) => void;
  /**
   * The first activity after a snapshot that found this subtask quiet (activity.ts): the coordinator
   * skips periodic checkpoints of a job at rest until it hears this.
   */
  readonly onActive?: (s: Subtask, afterCheckpoint: number) => void;
}

/** Characters of a record kept in its dead letter when it cannot be encoded (it may be megabytes or too deep). */
const DEAD_LETTER_PREVIEW = 64 * 1024;
/** A paused source checks this often whether it was cancelled. */
const PAUSE_POLL_MS = 20;

export class Subtask {
  readonly id: string;
  private readonly lifecycle: SubtaskLifecycle;
  private readonly parts: SubtaskParts;
  private readonly gate: InputGate;
  private readonly outputs: SubtaskOutputs;
  private readonly chain: OperatorChain;
  private readonly checkpointer: SubtaskCheckpointer;
  private readonly contexts: SubtaskContexts;
  private readonly counters: SubtaskCounters = { recordsIn: 0, idleMs: 0, currentWatermark: MIN_WATERMARK, busyReportedMs: 0 };
  private reader: SourceReader<unknown> | undefined;
  /** performance.now() when run() began: busy time is the rest of the running time (status). */
  private runningSince: number | undefined;
  /** When the status first saw it ended: its running time stops there. */
  private endedAt: number | undefined;

  constructor(readonly vertex: JobVertex, readonly index: number, private readonly deps: SubtaskDeps) {
    this.id = `${vertex.uid}#${index}`;
    const { names, attempt, job, graph } = deps;
    const keyGroupRange = KeyGroupRange.forOperator(graph.maxParallelism, Math.min(vertex.parallelism, graph.maxParallelism), Math.min(index, graph.maxParallelism - 1));

    // A record the producing operator emitted that cannot travel to the next subtask is dead-lettered
    // under that operator's name: failing the job would fail it again on every replay.
    const producer = vertex.nodes[vertex.nodes.length - 1]!.name;
    this.outputs = new SubtaskOutputs({
      nc: deps.nc, names, attempt, graph, vertex, index, frameSize: job.frameSize,
      unencodable: (value, reason) => deps.deadLetters.publish({ reason, origin: `${producer}#${index}`, data: preview(value, DEAD_LETTER_PREVIEW) }),
    });

    const { channels, perInput } = inputChannels(graph, vertex, index, names, attempt);
    // With checkpoints, lost frames fail the subtask and the job restarts from its last checkpoint; without
    // (at-most-once), the loss is logged and the channel carries on.
    this.gate = new InputGate(deps.nc, channels, job.creditWindow, job.checkpointIntervalMs > 0 ? failOnGap : (gap) => deps.log(`subtask ${this.id}: ${gap.message}; without checkpoints they are not recovered`));
    let debloater: BufferDebloater | undefined;
    if (job.bufferDebloatTargetMs > 0) {
      debloater = new BufferDebloater({ targetMs: job.bufferDebloatTargetMs, maxRecordsPerFrame: job.frameSize, framesInFlight: channels.length * job.creditWindow });
      if (channels.length > 0) this.gate.setRecordsPerFrame(debloater.recordsPerFrame, false);
    }

    const head = vertex.nodes[0]!;
    const keyed = vertex.nodes.some(isKeyedOperator);
    const activity = new SubtaskActivity((after) => deps.onActive?.(this, after));
    this.lifecycle = new SubtaskLifecycle(
      this.id,
      {
        vertex: vertex.id,
        index,
        name: vertex.name,
        sortsDuringBacklog: keyed && sortsBacklog(job) && head.kind !== "source",
        checkpointing: job.checkpointIntervalMs > 0,
      },
      {
        startSnapshot: (id) => this.checkpointer.startSnapshot(id),
        wakeForStop: () => this.gate.signal(),
        discardOperators: () => { this.closing ??= this.closeOperators({ keepState: job.checkpointIntervalMs === 0 }).catch(() => {}); },
        releaseResources: () => this.releaseResources(),
      },
      deps.clock,
      deps.inspect,
    );
    this.contexts = new SubtaskContexts(deps, {
      vertex,
      index,
      keyGroupRange,
      currentWatermark: () => this.counters.currentWatermark,
      outputCapacity: () => (this.outputs.isBlocked() ? this.outputs.waitUnblocked(() => this.lifecycle.isTerminal) : undefined),
      enqueue: (action, housekeeping) => {
        if (!housekeeping) activity.mark();
        this.gate.enqueue(action);
      },
      fail: (e) => this.fail(e),
    });
    this.chain = buildChain(vertex, this.outputs.byEdge, (node, output) => this.contexts.operator(node, output, () => this.checkpointer));
    this.checkpointer = new SubtaskCheckpointer({
      vertexUid: vertex.uid,
      index,
      parallelism: vertex.parallelism,
      operators: this.chain.operators.map(({ node, operator }) => ({
        uid: node.uid,
        operator,
        keyed: isKeyedOperator(node),
      })),
      ...(head.kind === "source" ? { source: { uid: head.uid, reader: () => this.reader } } : {}),
      backend: () => this.contexts.openedBackend(),
      emitBarrier: (b) => this.outputs.emitBarrier(b),
      deadLettersStored: () => deps.deadLetters.stored(),
      captureActivity: (id) => activity.capture(id),
      outputsEnded: () => this.lifecycle.outputsEnded,
      block: (c) => this.gate.block(c),
      unblock: (c) => this.gate.unblock(c),
      onPhase: (e) => this.lifecycle.send(e),
      onAck: (snap, id) => deps.onAck(this, snap, id),
      onDecline: (id, reason) => deps.onDecline(this, id, reason),
      log: deps.log,
    }, channels.length);
    this.parts = {
      id: this.id,
      gate: this.gate,
      chain: this.chain,
      outputs: this.outputs,
      checkpointer: this.checkpointer,
      lifecycle: this.lifecycle,
      inputs: new InputsWatermark(perInput),
      attributes: new InputsAttributes(perInput),
      debloater,
      counters: this.counters,
      activity,
      wait: { waitingOn: undefined, waitingSince: 0 },
      log: deps.log,
    };
  }

  /** Its state and what its run loop waits on (logged for a subtask that did not acknowledge a checkpoint in time). */
  describeWait(): string {
    return `${this.lifecycle.description}, ${describeWait(this.parts, this.parts.wait)}`;
  }

  /** The lifecycle actor (its id and systemId are this subtask's id). */
  get actor() { return this.lifecycle.actor; }
  get isSource(): boolean { return this.vertex.nodes[0]!.kind === "source"; }
  get state(): string { return this.lifecycle.description; }
  get isTerminal(): boolean { return this.lifecycle.isTerminal; }
  /** Input ended, state final, waiting for (or past) a checkpoint that includes it. */
  get isWaitingForFinalCheckpoint(): boolean { return this.lifecycle.inputFinished; }
  /** For sources: whether the reader says it is reading a backlog now. */
  get sourceIsBacklog(): boolean { return this.lifecycle.isBacklog; }
  get recordsIn(): number { return this.counters.recordsIn; }
  get backpressuredMs(): number { return this.outputs.backpressuredMs; }

  /** Subscriptions first: every subtask subscribes before any may publish (the caller flushes after). */
  setup(): void {
    this.lifecycle.start();
    this.gate.subscribe();
    this.outputs.subscribeCredits();
  }

  /** Opens operators (restoring state) and the source reader. */
  async open(): Promise<void> {
    this.lifecycle.send({ type: "DEPLOY" });
    for (const { operator } of this.chain.operators) await operator.open?.();
    const head = this.vertex.nodes[0]!;
    if (head.kind === "source") {
      const restored = this.deps.restore?.statesOf(head.uid);
      try {
        this.reader = await head.source.createReader({
          ...this.contexts.connector(head),
          restoredState: restored && restored.length ? restored.map((p) => p.state) : undefined,
        });
      } catch (e) { throw connectorError(head.name, this.index, e); }
    }
    this.lifecycle.send({ type: "RESTORED" });
  }

  /** Grants initial credits and runs until end of input, stop, cancel or failure. */
  run(): void {
    this.gate.start();
    this.runningSince = performance.now();
    this.outputs.startFlushing(this.runningSince);
    const loop = this.isSource ? runSource(this.parts, this.reader!, (e) => connectorError(this.vertex.nodes[0]!.name, this.index, e)) : runInput(this.parts);
    loop.then(() => this.finish()).catch((e) => this.fail(e));
  }

  /** Graceful stop: a source ends its input as if it were bounded (without the final MAX watermark). */
  requestStop(): void {
    this.lifecycle.send({ type: "STOP" });
  }

  /**
   * Resolves once the operators and the state backend are closed: without checkpoints the backend writes
   * its buffered state to KV first, which must not overlap a restarted attempt's reads or outlive the
   * connection an `env.close()` drains next.
   */
  cancel(): Promise<void> {
    this.lifecycle.send({ type: "CANCEL" });
    return this.closing ?? Promise.resolve();
  }

  /**
   * The NATS connection is back: grants sent while it was down may be lost, send them again; and probe
   * each output channel, whose consumer fails if a frame published before the probe is missing (a
   * finished subtask too: its end of input may be what was lost).
   */
  onReconnected(): void {
    if (!this.isTerminal) this.gate.regrant();
    this.outputs.probe();
  }

  /**
   * Source subtasks: start checkpoint `barrier` (on the mailbox, between batches). `pauseAfter`: read
   * nothing more until the subtask is cancelled (a rescale restarts from this checkpoint).
   */
  triggerCheckpoint(barrier: CheckpointBarrier, pauseAfter = false): void {
    if (!pauseAfter) {
      this.gate.enqueue(() => this.checkpointer.trigger(barrier));
      return;
    }
    this.gate.enqueue(async () => {
      await this.checkpointer.trigger(barrier);
      while (!this.isTerminal) await new Promise((r) => setTimeout(r, PAUSE_POLL_MS));
    });
  }

  /** The final checkpoint completed: close and finish, after the mail already queued (its notification). */
  release(): void {
    this.gate.enqueue(() => this.lifecycle.send({ type: "RELEASE" }));
  }

  notifyCheckpointComplete(checkpointId: number): void {
    const fail = (e: unknown) => this.fail(e);
    this.gate.enqueue(() => this.checkpointer.notifyComplete(checkpointId, fail).catch(fail));
  }

  notifyCheckpointAborted(checkpointId: number): void {
    this.gate.enqueue(() => this.checkpointer.notifyAborted(checkpointId));
  }

  /** Called by scenarios and tests: the subtask fails as if its code had thrown. */
  injectFailure(reason: string): void {
    this.gate.enqueue(() => { throw new WeirError(ErrorCode.UserFunction, reason); });
  }

  status(): SubtaskStatus {
    // Ended (finished, failed, cancelled): its time stops, or it would count as busy while the job waits to restart.
    const now = this.lifecycle.isTerminal ? (this.endedAt ??= performance.now()) : performance.now();
    const runningMs = this.runningSince === undefined ? 0 : now - this.runningSince;
    return subtaskStatus(this.parts, this.vertex, this.index, this.deps.deadLetters.count, runningMs, this.reader?.metrics?.());
  }

  // ------------------------------------------------------------------ end, failure, cancellation

  /** Input ended: each step of finishing is reported to the machine, which says what comes next. */
  private async finish(): Promise<void> {
    const life = this.lifecycle;
    if (life.isTerminal) return;
    life.send({ type: "END_OF_INPUT" });
    for (const { operator } of this.chain.operators) {
      const p = operator.endInput?.();
      if (p) await p;
    }
    this.outputs.emitEndOfInput();
    life.send({ type: "OUTPUTS_ENDED" });
    flushNow(this.parts);
    if (this.outputs.isBlocked()) await this.outputs.waitUnblocked(() => life.isTerminal);
    life.send({ type: "DRAINED" });
    if (life.awaitingFinalCheckpoint) {
      this.deps.onInputFinished(this);
      await this.serveMailUntilReleased();
    }
    if (!life.isClosing) return;
    await this.closeOperators({ keepState: true });
    await flushConnection(this.deps.nc);
    life.send({ type: "CLOSED" });
    if (life.isFinished) this.deps.onFinished(this);
  }

  /** After end of input: only checkpoint requests and notifications arrive, until release(). */
  private async serveMailUntilReleased(): Promise<void> {
    while (this.lifecycle.awaitingFinalCheckpoint) {
      const item = this.gate.poll();
      if (item?.type === "mail") {
        const p = item.action();
        if (p) await p;
        continue;
      }
      if (item === undefined) await this.gate.waitForInput();
    }
  }

  private fail(error: unknown): void {
    if (this.isTerminal) {
      // A worker fenced while it wrote state: its late KV writes refused after its cancel (said once; the cancel stands).
      if (error instanceof StateWriteConflictError && !this.conflictSaid) {
        this.conflictSaid = true;
        this.deps.log(`subtask ${this.id}, cancelled: ${error.message}`, { level: "warn" });
      }
      return;
    }
    this.lifecycle.send({ type: "FAIL", error: describeError(error) });
    this.deps.onFailed(this, error);
  }

  /** Entering a final state: nothing more comes in or goes out. */
  private releaseResources(): void {
    this.gate.close();
    this.outputs.close();
    void this.reader?.close().catch(() => {});
  }

  private conflictSaid = false;

  /** Closing operators and state after a cancel or failure (discardOperators): what `cancel()` waits for. */
  private closing: Promise<void> | undefined;

  /** Every operator is closed, and then the backend, even after a close that threw (Flink's too): the first error is rethrown. */
  private async closeOperators(options: { keepState: boolean }): Promise<void> {
    let first: { error: unknown } | undefined;
    for (const { operator } of this.chain.operators) {
      try { await operator.close?.(); } catch (error) { first ??= { error }; }
    }
    try { await this.contexts.closeBackend(options); } catch (error) { first ??= { error }; }
    if (first) throw first.error;
  }
}
