// StreamEnvironment: builds the graph, connects to NATS, runs the job. `execute()` returns when bounded
// sources end; `executeAsync()` hands back a JobClient for unbounded jobs.

import type { NatsConnection } from "@nats-io/transport-node";
import { createKeyedStateBackend, destroyKeyedState } from "../../state/mod.ts";
import type { KeyedStateBackend } from "../../state/contracts.ts";
import type { StateBackendRequest } from "../exec/subtask.ts";
import type { SourceDef } from "./connectors.ts";
import { DataStream, type StreamHost } from "./datastream.ts";
import { resolveJobOptions, type JobOptions, type ResolvedJobOptions } from "./options.ts";
import { buildJobGraph, type JobGraph } from "../graph/job-graph.ts";
import { StreamGraph, type NodeOptions } from "../graph/stream-graph.ts";
import { JobRunner, type JobResult, type JobStatus } from "../exec/job-runner.ts";
import type { Clock } from "../exec/clock.ts";
import { connectNats, resolveNatsUrl } from "../nats/connect.ts";
import { collectSink } from "../sinks/collect.ts";
import { JobNames } from "../names.ts";

export interface JobClient {
  readonly jobName: string;
  /** Graceful stop: sources stop, in-flight records drain, sinks flush. */
  stop(options?: { savepoint?: boolean }): Promise<JobResult>;
  cancel(): Promise<void>;
  status(): JobStatus;
  /** Resolves when the job ends (rejects with the failure). */
  result(): Promise<JobResult>;
  triggerCheckpoint(): Promise<number>;
}

export interface EnvironmentHooks {
  /** Processing-time clock for timers (tests may inject a ManualClock). */
  readonly clock?: Clock;
  readonly log?: (message: string) => void;
  /** Build the graph without chaining (every operator its own subtask). */
  readonly chaining?: boolean;
  /** Wraps each keyed state backend (tests and benchmarks inject latency or stalls). */
  readonly wrapStateBackend?: (backend: KeyedStateBackend) => KeyedStateBackend;
}

export class StreamEnvironment implements StreamHost {
  readonly graph = new StreamGraph();
  readonly options: ResolvedJobOptions;
  private nc: NatsConnection | undefined;
  private readonly running = new Set<JobRunner>();

  private constructor(options: JobOptions, private readonly hooks: EnvironmentHooks) {
    this.options = resolveJobOptions(options);
  }

  static create(options: JobOptions, hooks: EnvironmentHooks = {}): StreamEnvironment {
    return new StreamEnvironment(options, hooks);
  }

  get names(): JobNames { return new JobNames(this.options.name); }

  fromSource<T>(source: SourceDef<T>, options?: NodeOptions): DataStream<T> {
    return new DataStream<T>(this, this.graph.addSource(source as SourceDef<unknown>, options));
  }

  /** The physical graph (chains, parallelism, edges) this environment would run. */
  jobGraph(): JobGraph {
    return buildJobGraph(this.graph, {
      parallelism: this.options.parallelism,
      maxParallelism: this.options.maxParallelism,
      ...(this.hooks.chaining !== undefined ? { chaining: this.hooks.chaining } : {}),
    });
  }

  /** The connection jobs of this environment use (opened on first use). */
  async connection(): Promise<NatsConnection> {
    if (!this.nc || this.nc.isClosed()) this.nc = await connectNats(await resolveNatsUrl(this.options.nats), `weir:${this.options.name}`);
    return this.nc;
  }

  async execute(): Promise<JobResult> {
    const client = await this.executeAsync();
    return client.result();
  }

  async executeAsync(): Promise<JobClient> {
    const graph = this.jobGraph();
    const nc = await this.connection();
    const runner = new JobRunner(graph, this.options, nc, {
      ...(this.hooks.clock ? { clock: this.hooks.clock } : {}),
      ...(this.hooks.log ? { log: this.hooks.log } : {}),
      createStateBackend: (request) => this.createStateBackend(nc, request),
      resetState: () => destroyKeyedState(nc, this.names),
    });
    this.running.add(runner);
    const done = runner.result().finally(() => this.running.delete(runner));
    done.catch(() => {});
    await runner.start();
    return {
      jobName: this.options.name,
      stop: (o) => runner.stop(o ?? {}),
      cancel: async () => { await runner.cancel(); },
      status: () => runner.status(),
      result: () => done,
      triggerCheckpoint: () => runner.triggerCheckpoint(),
    };
  }

  async collect<T>(stream: DataStream<T>, options: { limit?: number }): Promise<T[]> {
    const into: T[] = [];
    let client: JobClient | undefined;
    let stopAsked = false;
    stream.sinkTo(collectSink(into, options.limit, () => {
      stopAsked = true;
      void client?.stop();
    }), { name: "Collect", uid: `collect-${this.graph.nodes.length}` });
    client = await this.executeAsync();
    if (stopAsked) void client.stop();
    await client.result();
    return into;
  }

  /** Cancels jobs still running and closes the connection. */
  async close(): Promise<void> {
    for (const r of this.running) await r.cancel();
    if (this.nc && !this.nc.isClosed()) await this.nc.drain().catch(() => this.nc?.close());
  }

  async [Symbol.asyncDispose](): Promise<void> { await this.close(); }

  private async createStateBackend(nc: NatsConnection, request: StateBackendRequest): Promise<KeyedStateBackend> {
    const checkpointing = this.options.checkpointIntervalMs > 0;
    const backend = await createKeyedStateBackend({
      kind: this.options.stateBackend,
      nc,
      names: this.names,
      keyGroupRange: request.keyGroupRange,
      maxParallelism: this.options.maxParallelism,
      // With checkpoints, uncommitted changes never reach KV: they go to the changelog at checkpoints.
      config: { ...this.options.state, durability: checkpointing ? "checkpoint" : "flush" },
      vertexUid: request.vertexUid,
      ...(checkpointing ? { onDirtyBudgetExceeded: request.onDirtyBudgetExceeded } : {}),
    });
    return this.hooks.wrapStateBackend ? this.hooks.wrapStateBackend(backend) : backend;
  }
}
