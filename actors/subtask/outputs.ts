// A subtask's output side: one channel writer per (out edge, target subtask), the network outputs that
// route records to them, the credit subscription that lets them send, and waiting while any has frames
// it may not send yet (backpressure). Flushing is paced on performance.now(), not on the injected clock:
// that clock is processing time for timers, and a test's frozen clock must not stop frames being sent.

import type { NatsConnection, Subscription } from "@nats-io/transport-node";
import type { JobGraph, JobVertex } from "../../runtime/graph/job-graph.ts";
import type { JobNames } from "../../runtime/core/names.ts";
import { ChannelWriter } from "../../runtime/transport/channel-writer.ts";
import type { CheckpointBarrier } from "../../runtime/transport/frames.ts";
import { NetworkOutput } from "./network-output.ts";

export const FLUSH_INTERVAL_MS = 20;

export interface OutputsSpec {
  readonly nc: NatsConnection;
  readonly names: JobNames;
  readonly attempt: string;
  readonly graph: JobGraph;
  readonly vertex: JobVertex;
  readonly index: number;
  readonly frameSize: number;
  /** A record the chain emitted cannot be encoded for the wire. */
  readonly unencodable: (value: unknown, reason: string) => void;
}

export class SubtaskOutputs {
  readonly writers: ChannelWriter[] = [];
  readonly byEdge = new Map<number, NetworkOutput>();
  private readonly writerByTag = new Map<string, ChannelWriter>();
  private creditSub: Subscription | undefined;
  private blockedWaiter: (() => void) | undefined;
  private lastFlush = 0;
  /** Time spent waiting for credit. */
  backpressuredMs = 0;

  constructor(private readonly spec: OutputsSpec) {
    const { nc, names, attempt, graph, vertex, index } = spec;
    const producer = vertex.nodes[vertex.nodes.length - 1]!.name;
    // For each out edge, one writer per target subtask (forward: the same index only).
    for (const edge of vertex.outputs) {
      const target = graph.vertices[edge.toVertex]!;
      const targets = edge.partitioning.type === "forward" ? [index] : Array.from({ length: target.parallelism }, (_, i) => i);
      const writers = targets.map((to) => {
        const w = new ChannelWriter(nc, names.channel(attempt, edge.id, index, to), spec.frameSize, nc.info?.max_payload ?? 1024 * 1024, () => this.onWriterDrained(), spec.unencodable);
        this.writerByTag.set(`${edge.id}.${to}`, w);
        this.writers.push(w);
        return w;
      });
      this.byEdge.set(edge.id, new NetworkOutput(edge, writers, { name: producer, index }, graph.maxParallelism));
    }
  }

  /** Subscribes to the credits the consumers grant (before any subtask publishes). */
  subscribeCredits(): void {
    if (this.writers.length === 0) return;
    const { nc, names, attempt, vertex, index } = this.spec;
    this.creditSub = nc.subscribe(names.credits(attempt, vertex.id, index), {
      callback: (err, msg) => {
        if (err) return;
        // "<tag> <frames granted up to>[ r<records per frame>]" (input-gate.ts)
        const [tag, credits, ...rest] = msg.string().split(" ");
        const hint = rest.find((f) => f.startsWith("r"));
        this.writerByTag.get(tag!)?.grant(Number(credits), hint === undefined ? undefined : Number(hint.slice(1)));
      },
    });
  }

  /** Stops taking credits and wakes a loop waiting for them. */
  close(): void {
    this.creditSub?.unsubscribe();
    this.wake();
  }

  emitBarrier(barrier: CheckpointBarrier): void { for (const o of this.byEdge.values()) o.emitBarrier(barrier); }
  emitEndOfInput(): void { for (const o of this.byEdge.values()) o.emitEndOfInput(); }

  /** After a reconnect: every channel's consumer checks that it received every frame published so far. */
  probe(): void { for (const w of this.writers) w.probe(); }

  get recordsSent(): number { return this.writers.reduce((n, w) => n + w.recordsSent, 0); }
  /** The highest watermark sent on any out edge (undefined before the first one, and for sinks). */
  get watermarkOut(): number | undefined {
    let w: number | undefined;
    for (const o of this.byEdge.values()) if (o.lastWatermark !== undefined && (w === undefined || o.lastWatermark > w)) w = o.lastWatermark;
    return w;
  }
  get pendingFrames(): number { return this.writers.reduce((n, w) => n + w.backlog, 0); }

  isBlocked(): boolean {
    for (const w of this.writers) if (w.backlog > 0) return true;
    return false;
  }

  /** Waits until every writer could send, or `stopped()` (the subtask ended). */
  async waitUnblocked(stopped: () => boolean): Promise<void> {
    const started = performance.now();
    while (this.isBlocked() && !stopped()) {
      await new Promise<void>((resolve) => { this.blockedWaiter = resolve; });
    }
    this.backpressuredMs += performance.now() - started;
  }

  /** Wakes a loop waiting for credit (it checks again why it waits). */
  wake(): void {
    const w = this.blockedWaiter;
    this.blockedWaiter = undefined;
    w?.();
  }

  private onWriterDrained(): void {
    if (!this.isBlocked()) this.wake();
  }

  startFlushing(now: number): void { this.lastFlush = now; }

  flush(now: number): void {
    for (const w of this.writers) w.seal();
    this.lastFlush = now;
  }

  /** Seals partly filled frames at most every FLUSH_INTERVAL_MS while records flow. */
  flushIfDue(now: number): void {
    if (now - this.lastFlush >= FLUSH_INTERVAL_MS) this.flush(now);
  }

  /** Records the outputs take now without waiting for credit (the smallest over out edges). */
  sendableRecords(): number {
    let n = Number.POSITIVE_INFINITY;
    for (const o of this.byEdge.values()) n = Math.min(n, o.sendableRecords());
    return n;
  }
}
