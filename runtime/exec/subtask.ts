// One operator subtask: its xstate actor (lifecycle), its input gate and mailbox, its operator chain and
// its channel writers. Records flow through plain functions in the run loop; the actor only hears about
// lifecycle changes (deployed, backlog/streaming, checkpoint phases, end of input, failure).

import { createActor, type Actor } from "xstate";
import type { NatsConnection, Subscription } from "@nats-io/transport-node";
import { describeSubtaskState, subtaskMachine } from "../../actors/subtask-machine.ts";
import type { KeyedStateBackend } from "../../state/contracts.ts";
import { KeyGroupRange } from "../../state/key-groups.ts";
import type { DeadLetters, SourceReader } from "../contracts/connectors.ts";
import type { ResolvedJobOptions } from "../contracts/job-options.ts";
import { ErrorCode, WeirError, describeError, messageOf } from "../core/errors.ts";
import type { JobGraph, JobVertex } from "../graph/job-graph.ts";
import type { PhysicalNode, SourceNode } from "../graph/stream-graph.ts";
import type { JobNames } from "../core/names.ts";
import type { MaybePromise, OperatorContext, Output, StreamOperator } from "../contracts/operators.ts";
import { InputsAttributes } from "../transport/attributes-valve.ts";
import { BufferDebloater } from "../transport/buffer-debloater.ts";
import { ChannelWriter } from "../transport/channel-writer.ts";
import { preview } from "../core/preview.ts";
import { MAX_WATERMARK, MIN_WATERMARK, type CheckpointBarrier, type Frame, type RecordAttributes } from "../transport/frames.ts";
import { InputGate, failOnGap, type InputChannelSpec, type MailAction } from "../transport/input-gate.ts";
import { InputsWatermark } from "../transport/watermark-valve.ts";
import { buildChain, type OperatorChain } from "./chain.ts";
import { SubtaskCheckpointer } from "../checkpoint/subtask-checkpointer.ts";
import type { RestoreBundle } from "../checkpoint/restore.ts";
import type { SubtaskSnapshot } from "../checkpoint/metadata.ts";
import type { Clock } from "../core/clock.ts";
import { NetworkOutput } from "./network-output.ts";

/** What a subtask asks of the job's state backend factory. */
export interface StateBackendRequest {
  readonly keyGroupRange: KeyGroupRange;
  /** Names the subtask's changelog subjects: the same in every run and at every parallelism. */
  readonly vertexUid: string;
  /** The backend's dirty buffer is over budget: a checkpoint would let it write (checkpoint mode). */
  readonly onDirtyBudgetExceeded: () => void;
}

export interface SubtaskDeps {
  readonly nc: NatsConnection;
  readonly names: JobNames;
  readonly attempt: string;
  readonly job: ResolvedJobOptions;
  readonly graph: JobGraph;
  readonly clock: Clock;
  readonly deadLetters: DeadLetters;
  readonly createStateBackend: (request: StateBackendRequest) => Promise<KeyedStateBackend>;
  readonly inspect?: (event: unknown) => void;
  readonly log: (message: string) => void;
  readonly onFinished: (s: Subtask) => void;
  readonly onFailed: (s: Subtask, error: unknown) => void;
  /** The checkpoint this run restores, if any. */
  readonly restore?: RestoreBundle;
  readonly onAck: (s: Subtask, snapshot: SubtaskSnapshot, checkpointId: number) => void;
  readonly onDecline: (s: Subtask, checkpointId: number, reason: string) => void;
  /**
   * With checkpoints on, a subtask whose input ended waits (FLIP-147) until a checkpoint holding its final
   * state completes; this tells the coordinator it is waiting.
   */
  readonly onInputFinished: (s: Subtask) => void;
  /** A keyed backend would like a checkpoint soon (its uncommitted changes are over budget). */
  readonly onDirtyBudgetExceeded?: () => void;
}

export interface SubtaskStatus {
  readonly id: string;
  readonly vertex: number;
  readonly name: string;
  readonly index: number;
  readonly state: string;
  readonly recordsIn: number;
  readonly recordsOut: number;
  readonly watermark: number | null;
  readonly backpressuredMs: number;
  readonly queuedFrames: number;
  readonly pendingFrames: number;
  readonly deadLetters: number;
  readonly isBacklog: boolean;
  readonly error?: string;
  readonly operators: Record<string, Record<string, number>>;
}

const FLUSH_INTERVAL_MS = 20;
/** Characters of a record kept in its dead letter when it cannot be encoded (it may be megabytes or too deep). */
const DEAD_LETTER_PREVIEW = 64 * 1024;
/** Records a debloating source reads per poll before its first throughput measurement. */
const INITIAL_SOURCE_POLL = 50;

export class Subtask {
  readonly id: string;
  readonly actor: Actor<typeof subtaskMachine>;
  private readonly gate: InputGate;
  private readonly writers: ChannelWriter[] = [];
  private readonly writerByTag = new Map<string, ChannelWriter>();
  private readonly networkOutputs = new Map<number, NetworkOutput>();
  private readonly chain: OperatorChain;
  private readonly keyGroupRange: KeyGroupRange;
  private readonly inputs: InputsWatermark;
  private readonly attributes: InputsAttributes;
  private readonly checkpointer: SubtaskCheckpointer;
  private creditSub: Subscription | undefined;
  private backend: Promise<KeyedStateBackend> | undefined;
  private reader: SourceReader<unknown> | undefined;
  private endedChannels = 0;
  private blockedWaiter: (() => void) | undefined;
  private lastFlush = 0;
  private stopRequested = false;
  private outputsEnded = false;
  private sourceWentLive = false;
  /** For sources: whether the reader says it is reading a backlog now. */
  sourceIsBacklog = false;
  private waitingForFinalCheckpoint = false;
  private released = false;
  private cancelled = false;
  private terminal = false;
  private currentWatermark = MIN_WATERMARK;
  recordsIn = 0;
  backpressuredMs = 0;
  /** Time spent waiting for input (a source: polls that found nothing), for the debloater's throughput. */
  private idleMs = 0;
  private readonly debloater: BufferDebloater | undefined;
  private error: unknown;

  constructor(readonly vertex: JobVertex, readonly index: number, private readonly deps: SubtaskDeps) {
    this.id = `${vertex.uid}#${index}`;
    const { names, attempt, job, graph } = deps;
    this.keyGroupRange = KeyGroupRange.forOperator(graph.maxParallelism, Math.min(vertex.parallelism, graph.maxParallelism), Math.min(index, graph.maxParallelism - 1));

    // A record the producing operator emitted that cannot travel to the next subtask is dead-lettered
    // under that operator's name: failing the job would fail it again on every replay.
    const producer = vertex.nodes[vertex.nodes.length - 1]!.name;
    const unencodable = (value: unknown, reason: string) => {
      deps.deadLetters.publish({ reason, origin: `${producer}#${index}`, data: preview(value, DEAD_LETTER_PREVIEW) });
    };
    // Output channels: for each out edge, one writer per target subtask (forward: the same index only).
    for (const edge of vertex.outputs) {
      const target = graph.vertices[edge.toVertex]!;
      const targets = edge.partitioning.type === "forward" ? [index] : range(target.parallelism);
      const writers = targets.map((to) => {
        const w = new ChannelWriter(deps.nc, names.channel(attempt, edge.id, index, to), job.frameSize, deps.nc.info?.max_payload ?? 1024 * 1024, () => this.onWriterDrained(), unencodable);
        this.writerByTag.set(`${edge.id}.${to}`, w);
        this.writers.push(w);
        return w;
      });
      this.networkOutputs.set(edge.id, new NetworkOutput(edge, writers, { name: vertex.nodes[vertex.nodes.length - 1]!.name, index }, graph.maxParallelism));
    }

    // Input channels: for each in edge, one per producer subtask (forward: the same index only).
    const channels: InputChannelSpec[] = [];
    const perInput: number[] = [];
    for (const edge of vertex.inputs) {
      const source = graph.vertices[edge.fromVertex]!;
      const producers = edge.partitioning.type === "forward" ? [index] : range(source.parallelism);
      for (const from of producers) {
        perInput[edge.inputIndex] = (perInput[edge.inputIndex] ?? 0) + 1;
        channels.push({
          subject: names.channel(attempt, edge.id, from, index),
          creditSubject: names.credits(attempt, edge.fromVertex, from),
          creditTag: `${edge.id}.${index}`,
          inputIndex: edge.inputIndex,
          indexInInput: perInput[edge.inputIndex]! - 1,
          description: `${source.name}#${from}`,
        });
      }
    }
    const inputCount = Math.max(1, perInput.length);
    for (let i = 0; i < inputCount; i++) perInput[i] ??= 0;
    // With checkpoints, lost frames fail the subtask and the job restarts from its last checkpoint; without
    // (at-most-once), the loss is logged and the channel carries on.
    this.gate = new InputGate(deps.nc, channels, job.creditWindow, job.checkpointIntervalMs > 0 ? failOnGap : (gap) => deps.log(`subtask ${this.id}: ${gap.message}; without checkpoints they are not recovered`));
    if (job.bufferDebloatTargetMs > 0) {
      this.debloater = new BufferDebloater({ targetMs: job.bufferDebloatTargetMs, maxRecordsPerFrame: job.frameSize, framesInFlight: channels.length * job.creditWindow });
      if (channels.length > 0) this.gate.setRecordsPerFrame(this.debloater.recordsPerFrame, false);
    }
    this.inputs = new InputsWatermark(perInput);
    this.attributes = new InputsAttributes(perInput);

    const head = vertex.nodes[0]!;
    const keyed = vertex.nodes.some((n) => n.kind === "operator" && n.spec.keySelectors !== undefined);
    this.actor = createActor(
      subtaskMachine.provide({
        actions: {
          requestStop: () => { this.cancelled = true; this.gate.signal(); this.blockedWaiter?.(); },
        },
      }),
      {
        id: this.id,
        systemId: this.id,
        input: { vertex: vertex.id, index, name: vertex.name, sortsDuringBacklog: keyed && job.mode !== "streaming" && job.checkpointIntervalDuringBacklogMs === 0 && head.kind !== "source" },
        ...(deps.inspect ? { inspect: deps.inspect } : {}),
      },
    );
    this.chain = buildChain(vertex, this.networkOutputs, (node, output) => this.operatorContext(node, output));
    this.checkpointer = new SubtaskCheckpointer({
      vertexUid: vertex.uid,
      index,
      parallelism: vertex.parallelism,
      operators: this.chain.operators.map(({ node, operator }) => ({
        uid: node.uid,
        operator,
        keyed: node.kind === "operator" && node.spec.keySelectors !== undefined,
      })),
      ...(head.kind === "source" ? { source: { uid: head.uid, reader: () => this.reader } } : {}),
      backend: () => this.backend,
      emitBarrier: (b) => { for (const o of this.networkOutputs.values()) o.emitBarrier(b); },
      outputsEnded: () => this.outputsEnded,
      block: (c) => this.gate.block(c),
      unblock: (c) => this.gate.unblock(c),
      onPhase: (e) => this.actor.send(e),
      onAck: (snap, id) => deps.onAck(this, snap, id),
      onDecline: (id, reason) => deps.onDecline(this, id, reason),
      log: deps.log,
    }, channels.length);
  }

  get isSource(): boolean { return this.vertex.nodes[0]!.kind === "source"; }
  get state(): string { return describeSubtaskState(this.actor.getSnapshot().value); }
  get isTerminal(): boolean { return this.terminal; }
  /** Input ended, state final, waiting for a checkpoint that includes it. */
  get isWaitingForFinalCheckpoint(): boolean { return this.waitingForFinalCheckpoint; }

  /** Subscriptions first: every subtask subscribes before any may publish (the caller flushes after). */
  setup(): void {
    this.actor.start();
    this.gate.subscribe();
    if (this.writers.length > 0) {
      this.creditSub = this.deps.nc.subscribe(this.deps.names.credits(this.deps.attempt, this.vertex.id, this.index), {
        callback: (err, msg) => {
          if (err) return;
          // "<tag> <frames granted up to>[ r<records per frame>]" (input-gate.ts)
          const [tag, credits, ...rest] = msg.string().split(" ");
          const hint = rest.find((f) => f.startsWith("r"));
          this.writerByTag.get(tag!)?.grant(Number(credits), hint === undefined ? undefined : Number(hint.slice(1)));
        },
      });
    }
  }

  /** Opens operators (restoring state) and the source reader. */
  async open(): Promise<void> {
    this.actor.send({ type: "DEPLOY" });
    for (const { operator } of this.chain.operators) await operator.open?.();
    const head = this.vertex.nodes[0]!;
    if (head.kind === "source") {
      const restored = this.deps.restore?.statesOf(head.uid);
      this.reader = await head.source.createReader({
        ...this.connectorContext(head),
        restoredState: restored && restored.length ? restored.map((p) => p.state) : undefined,
      });
    }
    this.actor.send({ type: "RESTORED" });
  }

  /** Grants initial credits and runs until end of input, stop, cancel or failure. */
  run(): void {
    this.gate.start();
    this.lastFlush = performance.now();
    const loop = this.isSource ? this.runSource() : this.runInput();
    loop.then(() => this.finish()).catch((e) => this.fail(e));
  }

  /** Graceful stop: a source ends its input as if it were bounded (without the final MAX watermark). */
  requestStop(): void {
    this.stopRequested = true;
    this.gate.signal();
  }

  cancel(): void {
    if (this.terminal) return;
    this.actor.send({ type: "CANCEL" });
    this.terminate();
    void this.closeOperators({ keepState: this.deps.job.checkpointIntervalMs === 0 }).catch(() => {});
  }

  /** The NATS connection is back: grants sent while it was down may be lost, send them again. */
  onReconnected(): void {
    if (!this.terminal) this.gate.regrant();
  }

  /** Source subtasks: start checkpoint `barrier` (on the mailbox, between batches). */
  triggerCheckpoint(barrier: CheckpointBarrier): void {
    this.gate.enqueue(() => this.checkpointer.trigger(barrier));
  }

  /** The final checkpoint completed: close and finish, after the mail already queued (its notification). */
  release(): void {
    this.gate.enqueue(() => { this.released = true; });
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
    this.gate.enqueue(() => { throw new WeirError(ErrorCode.InvalidJob, reason); });
  }

  status(): SubtaskStatus {
    const operators: Record<string, Record<string, number>> = {};
    for (const { node, operator } of this.chain.operators) {
      const m = operator.metrics?.();
      if (m) operators[node.name] = m;
    }
    const recordsOut = this.writers.reduce((n, w) => n + w.recordsSent, 0)
      + Object.values(operators).reduce((n, m) => n + (m.recordsOut ?? 0), 0);
    return {
      id: this.id,
      vertex: this.vertex.id,
      name: this.vertex.name,
      index: this.index,
      state: this.state,
      recordsIn: this.recordsIn,
      recordsOut,
      watermark: this.currentWatermark === MIN_WATERMARK ? null : this.currentWatermark,
      backpressuredMs: Math.round(this.backpressuredMs),
      queuedFrames: this.gate.queuedFrames,
      pendingFrames: this.writers.reduce((n, w) => n + w.backlog, 0),
      deadLetters: this.deps.deadLetters.count,
      isBacklog: this.attributes.isBacklog,
      ...(this.error !== undefined ? { error: describeError(this.error) } : {}),
      operators,
    };
  }

  // ------------------------------------------------------------------ run loops

  private async runInput(): Promise<void> {
    const head = this.chain.operators[0]!.operator;
    const channels = this.gate.channels;
    while (!this.cancelled) {
      if (this.isBlocked()) await this.waitUnblocked();
      const item = this.gate.poll();
      if (item === undefined) {
        head.onInputIdle?.();
        this.flushOutputs();
        // Async records still running emit later: wake up to flush what they produce.
        const idleFrom = performance.now();
        await this.gate.waitForInput((head.pendingWork?.() ?? 0) > 0 ? FLUSH_INTERVAL_MS : undefined);
        this.idleMs += performance.now() - idleFrom;
        continue;
      }
      if (item.type === "mail") {
        const p = item.action();
        if (p) await p;
        continue;
      }
      const spec = channels[item.channel]!;
      const p = this.handleFrame(head, spec, item.channel, item.frame);
      if (p) await p;
      this.gate.ack(item.channel);
      if (this.endedChannels === channels.length) return;
      this.maybeFlush();
    }
  }

  private async runSource(): Promise<void> {
    const reader = this.reader!;
    const out = this.chain.headOutput;
    for (;;) {
      for (let m = this.gate.poll(); m; m = this.gate.poll()) {
        if (m.type === "mail") { const p = m.action(); if (p) await p; }
      }
      if (this.cancelled || this.stopRequested) return;
      if (this.isBlocked()) { await this.waitUnblocked(); continue; }
      const attrs = reader.takeAttributes?.();
      if (attrs) {
        if (attrs.isBacklog && this.sourceWentLive) {
          // As in Flink: once live, a source does not go back to backlog processing.
          this.deps.log(`source ${this.id} reported backlog again after going live: ignored`);
        } else {
          this.sourceIsBacklog = attrs.isBacklog;
          if (!attrs.isBacklog) this.sourceWentLive = true;
          await this.emitAttributes(out, attrs);
        }
      }
      const polledAt = performance.now();
      const batch = await reader.pollNext(this.debloater ? this.sourcePollLimit(this.debloater) : undefined);
      if (batch === null) {
        // A bounded source ended: the final watermark fires every event-time timer and window.
        const p = out.emitWatermark(MAX_WATERMARK);
        if (p) await p;
        this.currentWatermark = MAX_WATERMARK;
        return;
      }
      const { values, timestamps } = batch;
      if (values.length === 0) {
        this.idleMs += performance.now() - polledAt;
        this.flushOutputs();
        continue;
      }
      this.recordsIn += values.length;
      for (let i = 0; i < values.length; i++) {
        const p = out.collect(values[i], timestamps?.[i]);
        if (p) await p;
      }
      this.maybeFlush();
    }
  }

  private handleFrame(head: StreamOperator, spec: InputChannelSpec, channel: number, frame: Frame): MaybePromise {
    const input = spec.inputIndex;
    switch (frame.k) {
      case "r": {
        const { v, t } = frame;
        this.recordsIn += v.length;
        for (let i = 0; i < v.length; i++) {
          const p = head.processElement(v[i], t ? (t[i] ?? undefined) : undefined, input);
          if (p) return this.continueRecords(head, input, v, t, i + 1, p);
        }
        return;
      }
      case "w": return this.deliverWatermark(this.inputs.watermark(input, spec.indexInInput, frame.w));
      case "s": return this.deliverWatermark(this.inputs.status(input, spec.indexInInput, frame.idle));
      case "a": {
        const changed = this.attributes.input(input, spec.indexInInput, frame.backlog);
        if (changed !== undefined) return this.emitAttributes(this.chain.headOutput, { isBacklog: changed });
        return;
      }
      case "b":
        return this.checkpointer.onBarrier(channel, frame.b);
      case "e": {
        this.endedChannels++;
        const attrs = this.attributes.ended(input, spec.indexInInput);
        const w = this.deliverWatermark(this.inputs.ended(input, spec.indexInInput));
        const a = (): MaybePromise => (attrs === undefined ? undefined : this.emitAttributes(this.chain.headOutput, { isBacklog: attrs }));
        // An ended channel no longer owes barriers: it may complete an alignment.
        const c = (): MaybePromise => this.checkpointer.onEndOfInput(channel);
        return andThen(andThen(w, a), c);
      }
    }
  }

  private async continueRecords(head: StreamOperator, input: number, v: unknown[], t: Array<number | null> | undefined, from: number, first: Promise<void>): Promise<void> {
    await first;
    for (let i = from; i < v.length; i++) {
      const p = head.processElement(v[i], t ? (t[i] ?? undefined) : undefined, input);
      if (p) await p;
    }
  }

  private deliverWatermark(change: { watermark?: number; idle?: boolean }): MaybePromise {
    const out = this.chain.headOutput;
    let p: MaybePromise = undefined;
    if (change.idle !== undefined) p = out.emitIdle(change.idle);
    if (change.watermark !== undefined) {
      const w = change.watermark;
      this.currentWatermark = w;
      p = p ? p.then(() => out.emitWatermark(w)) : out.emitWatermark(w);
    }
    return p;
  }

  private emitAttributes(out: Output, attrs: RecordAttributes): MaybePromise {
    this.actor.send({ type: "BACKLOG", isBacklog: attrs.isBacklog });
    const p = out.emitAttributes(attrs);
    // Backlog → sorting: the keyed operator is processing its sorted backlog until `p` settles.
    if (!this.actor.getSnapshot().matches({ running: { mode: "sorting" } })) return p;
    const drained = () => { this.actor.send({ type: "SORT_DRAINED" }); };
    return p ? p.then(drained) : drained();
  }

  // ------------------------------------------------------------------ outputs and backpressure

  private isBlocked(): boolean {
    for (const w of this.writers) if (w.backlog > 0) return true;
    return false;
  }

  private async waitUnblocked(): Promise<void> {
    const started = performance.now();
    while (this.isBlocked() && !this.cancelled) {
      await new Promise<void>((resolve) => { this.blockedWaiter = resolve; });
    }
    this.backpressuredMs += performance.now() - started;
  }

  private onWriterDrained(): void {
    if (!this.isBlocked()) {
      const w = this.blockedWaiter;
      this.blockedWaiter = undefined;
      w?.();
    }
  }

  private flushOutputs(): void {
    for (const w of this.writers) w.seal();
    this.lastFlush = performance.now();
  }

  private maybeFlush(): void {
    const now = performance.now();
    if (this.debloater?.due(now)) this.debloat(this.debloater, now);
    if (now - this.lastFlush >= FLUSH_INTERVAL_MS) this.flushOutputs();
  }

  /**
   * A debloating source reads no more than its channels can send without waiting (their consumers size
   * the frames and grant the credits), so records do not queue up here ahead of a barrier; a source with
   * no channels (its chain ends in a sink) reads about the target time of its measured rate.
   */
  private sourcePollLimit(d: BufferDebloater): number {
    if (this.networkOutputs.size === 0) return d.recordsBudget() ?? INITIAL_SOURCE_POLL;
    let n = Number.POSITIVE_INFINITY;
    for (const o of this.networkOutputs.values()) n = Math.min(n, o.sendableRecords());
    return Math.max(1, n);
  }

  /**
   * Buffer debloating (buffer-debloater.ts): producers are asked for frames holding about the target
   * drain time of this subtask's work, and its operators keep no more records in flight than that.
   */
  private debloat(d: BufferDebloater, now: number): void {
    if (d.sample(now, this.recordsIn, this.idleMs)) this.gate.setRecordsPerFrame(d.recordsPerFrame, true);
    const budget = d.recordsBudget();
    if (budget !== undefined) for (const { operator } of this.chain.operators) operator.setInFlightBudget?.(budget);
  }

  // ------------------------------------------------------------------ end, failure, cancellation

  private async finish(): Promise<void> {
    if (this.cancelled) return;
    this.actor.send({ type: "END_OF_INPUT" });
    for (const { operator } of this.chain.operators) {
      const p = operator.endInput?.();
      if (p) await p;
    }
    for (const o of this.networkOutputs.values()) o.emitEndOfInput();
    this.outputsEnded = true;
    this.flushOutputs();
    if (this.isBlocked()) await this.waitUnblocked();
    if (this.cancelled) return;
    if (this.deps.job.checkpointIntervalMs > 0) {
      this.waitingForFinalCheckpoint = true;
      this.deps.onInputFinished(this);
      await this.serveMailUntilReleased();
      if (this.cancelled) return;
    }
    await this.closeOperators();
    await this.deps.nc.flush();
    this.actor.send({ type: "FINISHED" });
    this.terminate();
    this.deps.onFinished(this);
  }

  /** After end of input: only checkpoint requests and notifications arrive, until release(). */
  private async serveMailUntilReleased(): Promise<void> {
    while (!this.released && !this.cancelled) {
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
    if (this.terminal) return;
    this.error = error;
    this.actor.send({ type: "FAIL", error: messageOf(error) });
    this.terminate();
    void this.closeOperators({ keepState: this.deps.job.checkpointIntervalMs === 0 }).catch(() => {});
    this.deps.onFailed(this, error);
  }

  private terminate(): void {
    if (this.terminal) return;
    this.terminal = true;
    this.cancelled = true;
    this.gate.close();
    this.creditSub?.unsubscribe();
    this.blockedWaiter?.();
    if (this.actor.getSnapshot().status !== "active") this.actor.stop();
    void this.reader?.close().catch(() => {});
  }

  private closed = false;
  /** keepState false: buffered state changes are dropped, not written (the restart restores a checkpoint). */
  private async closeOperators(options: { keepState: boolean } = { keepState: true }): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const { operator } of this.chain.operators) await operator.close?.();
    const backend = this.backend ? await this.backend : undefined;
    if (!backend) return;
    if (options.keepState || !backend.dispose) await backend.close();
    else backend.dispose();
  }

  /** The keyed backend, restored to the checkpoint this run starts from. */
  private async openBackend(): Promise<KeyedStateBackend> {
    const backend = await this.deps.createStateBackend({
      keyGroupRange: this.keyGroupRange,
      vertexUid: this.vertex.uid,
      onDirtyBudgetExceeded: () => this.deps.onDirtyBudgetExceeded?.(),
    });
    const keyedUids = this.vertex.nodes.filter((n) => n.kind === "operator" && n.spec.keySelectors !== undefined).map((n) => n.uid);
    const snapshots = this.deps.restore?.keyedSnapshotsOf(keyedUids) ?? [];
    if (snapshots.length > 0) {
      if (!backend.restore) throw new Error(`the ${backend.kind} state backend cannot restore checkpoint ${this.deps.restore!.id}`);
      await backend.restore(snapshots);
      this.checkpointer.restoredFrom(snapshots);
    }
    return backend;
  }

  // ------------------------------------------------------------------ contexts

  private connectorContext(node: PhysicalNode | SourceNode) {
    return {
      jobName: this.deps.job.name,
      names: this.deps.names,
      operatorUid: node.uid,
      operatorName: node.name,
      subtaskIndex: this.index,
      parallelism: this.vertex.parallelism,
      nc: this.deps.nc,
      deadLetters: this.deps.deadLetters,
      log: this.deps.log,
    };
  }

  private operatorContext(node: PhysicalNode, output: Output): OperatorContext {
    return {
      runtime: {
        jobName: this.deps.job.name,
        operatorName: node.name,
        operatorUid: node.uid,
        subtaskIndex: this.index,
        parallelism: this.vertex.parallelism,
        maxParallelism: this.deps.graph.maxParallelism,
        attempt: this.deps.attempt,
      },
      output,
      job: this.deps.job,
      nc: this.deps.nc,
      names: this.deps.names,
      deadLetters: this.deps.deadLetters,
      keyGroupRange: this.keyGroupRange,
      clock: this.deps.clock,
      stateBackend: () => (this.backend ??= this.openBackend()),
      restoredState: () => {
        const parts = this.deps.restore?.statesOf(node.uid);
        return parts && parts.length ? parts : undefined;
      },
      checkpointing: this.deps.job.checkpointIntervalMs > 0,
      restoring: this.deps.restore !== undefined,
      currentWatermark: () => this.currentWatermark,
      enqueue: (action: MailAction) => this.gate.enqueue(action),
      fail: (e: unknown) => this.fail(e),
      log: this.deps.log,
    };
  }
}

function andThen(first: MaybePromise, next: () => MaybePromise): MaybePromise {
  return first ? first.then(next) : next();
}

function range(n: number): number[] {
  return Array.from({ length: n }, (_, i) => i);
}
