// StreamEnvironment: builds the graph, connects to NATS, runs the job. `execute()` returns when bounded
// sources end; `executeAsync()` hands back a JobClient for unbounded jobs. As in Flink, each execution
// runs the sinks defined since the previous one; cached streams (DataStream.cache, FLIP-205) live as
// long as the environment.

import { refuseIfRunningElsewhere } from "./job-already-running.ts";
import { randomBytes } from "node:crypto";
import type { NatsConnection } from "@nats-io/transport-node";
import { createKeyedStateBackend, destroyKeyedState } from "../../state/mod.ts";
import type { KeyedStateBackend } from "../../state/contracts.ts";
import type { StateBackendRequest } from "../../actors/subtask/subtask.ts";
import type { SubtaskStatus } from "../../actors/subtask/status.ts";
import type { SourceDef } from "../contracts/connectors.ts";
import { DataStream, type StreamHost } from "./datastream.ts";
import { resolveJobOptions, unusedOptionsNote, type JobOptions, type ResolvedJobOptions } from "./options.ts";
import { executionModeFor } from "./execution-mode.ts";
import { buildJobGraph, type JobGraph } from "../graph/job-graph.ts";
import { StreamGraph, type CacheNode, type NodeOptions, type SourceNode } from "../graph/stream-graph.ts";
import { planExecution, type ExecutionPlan } from "../graph/execution-plan.ts";
import { CacheStore } from "../cache/store.ts";
import { ErrorCode, WeirError } from "../core/errors.ts";
import { JobRunner, type JobResult, type JobRunnerOptions, type JobStatus } from "../../actors/job/job-runner.ts";
import { JobWorker } from "../../actors/worker/job-worker.ts";
import { jobModules } from "../cluster/job-modules.ts";

/** A job this environment runs: in this process alone (JobRunner) or as one of its workers (JobWorker). */
type RunningJob = Pick<JobRunner, "start" | "stop" | "cancel" | "status" | "result" | "triggerCheckpoint">;
import type { Clock } from "../core/clock.ts";
import { connectNats, resolveNatsConnection } from "../nats/connect.ts";
import type { NatsFlags } from "../nats/connection-settings.ts";
import { collectSink } from "../sinks/collect.ts";
import { JobNames } from "../core/names.ts";
import { decodeOptions } from "../core/validation.ts";
import { EnvironmentHooksCodec, SourceNodeOptionsCodec, StopOptionsCodec } from "./option-codecs.ts";
import { requireMethods } from "./argument-checks.ts";
import type { ExecutionMode } from "../contracts/job-options.ts";
import type { WatermarkStrategy } from "../contracts/watermarks.ts";
import { timestampsSpec } from "../operators/timestamps.ts";
import type { LogFn } from "../core/log.ts";

/** `env.fromSource(source, options)`: a node's name, uid, parallelism, and the source's watermarks. */
export interface SourceOptions<T> extends NodeOptions {
  readonly watermarks?: WatermarkStrategy<T>;
}

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
  /** Every log line of the job (default: stderr); `fields` carry the level, subtask, checkpoint and error. */
  readonly log?: LogFn;
  /** Build the graph without chaining (every operator its own subtask). */
  readonly chaining?: boolean;
  /** Wraps each keyed state backend (tests and benchmarks inject latency or stalls). */
  readonly wrapStateBackend?: (backend: KeyedStateBackend) => KeyedStateBackend;
  /** `weir run`'s --nats/--context/--creds: above WEIR_NATS_* and the job option `nats` (connection-settings.ts). */
  readonly natsFlags?: NatsFlags;
  /** The final figures of this process's subtasks as a restart replaces them (`weir run`'s /metrics counts on from them). */
  readonly onSubtasksRetired?: (ended: readonly SubtaskStatus[]) => void;
}

export class StreamEnvironment implements StreamHost {
  readonly graph = new StreamGraph();
  readonly options: ResolvedJobOptions;
  private nc: NatsConnection | undefined;
  private readonly running = new Set<RunningJob>();
  /** close() was called: no job starts any more (one still connecting is refused). */
  private closed = false;
  private closing: Promise<void> | undefined;
  /** Sinks with a smaller id ran in an earlier execution. */
  private firstSink = 0;
  /** Cached streams written by a finished execution, by cache node id. */
  private readonly produced = new Map<number, { parallelism: number }>();
  private readonly invalidated = new Set<number>();
  private readonly caches: CacheStore;

  private constructor(private readonly given: JobOptions, private readonly hooks: EnvironmentHooks) {
    this.options = resolveJobOptions(given);
    this.caches = new CacheStore(() => this.connection(), this.names, randomBytes(4).toString("hex"), (m) => this.log(m));
  }

  static create(options: JobOptions, hooks: EnvironmentHooks = {}): StreamEnvironment {
    decodeOptions(EnvironmentHooksCodec, hooks, "StreamEnvironment.create() hooks");
    return new StreamEnvironment(options, hooks);
  }

  private log(message: string): void {
    if (this.hooks.log) this.hooks.log(message);
    else process.stderr.write(`[weir ${this.options.name}] ${message}\n`);
  }

  get names(): JobNames { return new JobNames(this.options.name, this.options.natsReplicas); }

  /**
   * `watermarks` (Flink's fromSource argument) is `.assignTimestampsAndWatermarks(strategy)` right after
   * the source, at the source's parallelism so the two chain, with a watermark per split of the source.
   */
  fromSource<T>(source: SourceDef<T>, options?: SourceOptions<T>): DataStream<T> {
    requireMethods(source, ["createReader"], "fromSource()", "a source such as Sources.jetstream(...)");
    const checked = options === undefined ? {} : decodeOptions(SourceNodeOptionsCodec, options, "fromSource() options");
    const { watermarks, ...node } = checked;
    const stream = new DataStream<T>(this, this.graph.addSource(source as SourceDef<unknown>, node));
    if (!watermarks) return stream;
    const sourceNode = this.graph.node(stream.nodeId) as SourceNode;
    const sourceParallelism = sourceNode.parallelism ?? source.defaultParallelism;
    const assigner = timestampsSpec(watermarks as WatermarkStrategy<T>, true);
    return new DataStream<T>(this, this.graph.addOperator("Timestamps/Watermarks", [[stream.nodeId]], assigner, {
      name: `${sourceNode.name}: watermarks`,
      ...(node.uid !== undefined ? { uid: `${node.uid}-watermarks` } : {}),
      ...(sourceParallelism !== undefined ? { parallelism: sourceParallelism } : {}),
    }));
  }

  /** The physical graph (chains, parallelism, edges) the next execution of this environment would run. */
  jobGraph(): JobGraph {
    return this.build(this.plan());
  }

  private plan(): ExecutionPlan {
    return planExecution(this.graph, {
      firstSink: this.firstSink,
      produced: this.produced,
      writer: (cache) => this.caches.writer(cache.uid),
      reader: (cache) => this.caches.reader(cache.uid, cache.name),
    });
  }

  private build(plan: ExecutionPlan, parallelism = this.options.parallelism): JobGraph {
    return buildJobGraph(plan.graph, {
      parallelism,
      maxParallelism: this.options.maxParallelism,
      ...(this.hooks.chaining !== undefined ? { chaining: this.hooks.chaining } : {}),
    });
  }

  /**
   * DataStream.cache(): batch mode only, as in FLIP-205 (a cache of an unbounded stream never completes).
   * Mode "automatic" may run the job in batch mode: whether it does is known at launch (checkCaches).
   */
  addCache(input: number): number {
    if (this.options.mode === "streaming") {
      throw new WeirError(ErrorCode.InvalidGraph, `cache(): cached streams need mode "batch" (FLIP-205); this job runs in mode "streaming"`);
    }
    return this.graph.addCache(input);
  }

  /** A launch in mode "automatic" that does not run in batch mode cannot use its cached streams. */
  private checkCaches(mode: ExecutionMode): void {
    if (mode === "batch" || !this.graph.nodes.some((n) => n.kind === "cache")) return;
    throw new WeirError(ErrorCode.InvalidGraph, `cache(): cached streams need batch mode (FLIP-205); mode "automatic" does not run this job in batch mode, because ${this.options.checkpointIntervalMs > 0 ? "it takes checkpoints (checkpointIntervalMs; batch jobs take none)" : "one of its sources is unbounded"}`);
  }

  /** Drops a cached stream: the next execution computes it again (and caches it anew). */
  async invalidateCache(cacheNode: number): Promise<void> {
    const node = this.graph.node(cacheNode) as CacheNode;
    this.produced.delete(cacheNode);
    this.invalidated.add(cacheNode);
    await this.caches.purge(node.uid);
  }

  /** The connection jobs of this environment use (opened on first use). */
  async connection(): Promise<NatsConnection> {
    if (!this.nc || this.nc.isClosed()) this.nc = await connectNats(await resolveNatsConnection({ option: this.options.nats, ...(this.hooks.natsFlags ? { flags: this.hooks.natsFlags } : {}) }), `weir:${this.options.name}`);
    return this.nc;
  }

  async execute(): Promise<JobResult> {
    const client = await this.executeAsync();
    return client.result();
  }

  async executeAsync(): Promise<JobClient> {
    return this.launch((graph, nc, options, job) => new JobRunner(graph, job, nc, options), "alone");
  }

  /**
   * Runs this process as one worker of the job (as `weir run` does): with other workers of the same job
   * name on the same NATS, the subtasks are spread over all of them and one leads (actors/worker/).
   */
  async executeAsWorker(run: { startedAt?: number; stopEndsJob?: boolean; onCreated?: (worker: { readonly workerId: string; status(): JobStatus }) => void; entryFile?: string } = {}): Promise<JobClient & { readonly workerId: string }> {
    let worker: JobWorker | undefined;
    // The job's own modules (its entry and the local files it imports): workers compare them. `weir run`
    // names the job file; a program is its own entry, unless it runs from a package (a test runner).
    const modules = await jobModules(run.entryFile ?? process.argv[1]);
    const client = await this.launch((graph, nc, options, job) => {
      worker = new JobWorker(graph, job, nc, options, { ...run, ...(modules !== undefined ? { modules } : {}) });
      // Seen while it starts (its first deployment may wait and retry): weir run's /metrics and dashboard.
      const created = worker;
      run.onCreated?.({ workerId: created.id, status: () => created.status() });
      return created;
    }, "worker");
    return { ...client, workerId: worker!.id };
  }

  /**
   * FLIP-205: a cached stream lost since it was written (its stream deleted, messages purged or expired)
   * is computed again from its upstream in this execution, as if it had never been cached.
   */
  private async recoverLostCaches(): Promise<void> {
    const plan = this.plan();
    for (const [id, { parallelism }] of [...this.produced]) {
      if (plan.graph.node(id).kind !== "source") continue; // not read by this execution
      const node = this.graph.node(id) as CacheNode;
      const why = await this.caches.check(node.uid, parallelism);
      if (why === undefined) continue;
      this.produced.delete(id);
      await this.caches.purge(node.uid); // what is left of it would mix with the new frames
      this.log(`cached stream "${node.name}" was lost (${why}): computing it again from its input`);
    }
  }

  /** After a failed execution: caches it was reading that turn out lost are computed by the next one. */
  private async forgetLostCaches(plan: ExecutionPlan): Promise<void> {
    for (const [id, { parallelism }] of [...this.produced]) {
      if (plan.graph.node(id).kind !== "source") continue;
      const { uid } = this.graph.node(id) as CacheNode;
      const why = await this.caches.check(uid, parallelism).catch(() => undefined);
      if (why === undefined) continue;
      this.produced.delete(id);
      await this.caches.purge(uid);
    }
  }

  private async launch(create: (graph: JobGraph, nc: NatsConnection, options: JobRunnerOptions, job: ResolvedJobOptions) => RunningJob, as: "alone" | "worker"): Promise<JobClient> {
    if (this.produced.size > 0) await this.recoverLostCaches();
    const plan = this.plan();
    const graph = this.build(plan);
    // The mode this launch runs in follows from its sources (batch when all are bounded, execution-mode.ts).
    const mode = executionModeFor(this.options, graph);
    this.checkCaches(mode);
    if (plan.writes.length > 0) this.caches.beginExecution();
    const job: ResolvedJobOptions = mode === this.options.mode ? this.options : { ...this.options, mode };
    const unused = unusedOptionsNote(this.given, job);
    if (unused !== undefined) this.log(unused);
    this.firstSink = this.graph.nodes.length;
    for (const w of plan.writes) this.invalidated.delete(w.cache.id);
    const nc = await this.connection();
    // Closed while connecting: nothing may start on a connection close() did not see.
    if (this.closed) {
      await nc.close().catch(() => {});
      throw new WeirError(ErrorCode.Cancelled, `job ${this.options.name}: the environment was closed before the job started`);
    }
    // A server that is not part of a cluster takes a replica count above 1 for an existing stream without
    // complaint (nats-server 2.9.10), and the job's streams would only claim a replication they lack.
    if (this.options.natsReplicas > 1 && !nc.info?.cluster) {
      throw new WeirError(ErrorCode.InvalidOption, `natsReplicas ${this.options.natsReplicas}: the NATS server is not part of a cluster; replicas need a JetStream cluster of at least ${this.options.natsReplicas} servers`);
    }
    await refuseIfRunningElsewhere(nc, this.options.name, as);
    const runner = create(graph, nc, {
      ...(this.hooks.clock ? { clock: this.hooks.clock } : {}),
      ...(this.hooks.log ? { log: this.hooks.log } : {}),
      ...(this.hooks.onSubtasksRetired ? { onSubtasksRetired: this.hooks.onSubtasksRetired } : {}),
      createStateBackend: (request) => this.createStateBackend(nc, request),
      resetState: () => destroyKeyedState(nc, this.names),
      graphFor: (parallelism) => this.build(plan, parallelism),
    }, job);
    this.running.add(runner);
    const done = this.afterCacheWrites(plan, graph, runner.result())
      .catch(async (e: unknown) => { if (this.produced.size > 0) await this.forgetLostCaches(plan); throw e; })
      .finally(() => this.running.delete(runner));
    done.catch(() => {});
    await runner.start();
    return {
      jobName: this.options.name,
      stop: async (o) => runner.stop(decodeOptions(StopOptionsCodec, o ?? {}, "JobClient.stop options")),
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

  /**
   * A cache is complete only when its job finished (a stopped or failed job may have cut it short): then
   * later executions read it; otherwise what was written is dropped.
   */
  private afterCacheWrites(plan: ExecutionPlan, graph: JobGraph, result: Promise<JobResult>): Promise<JobResult> {
    if (plan.writes.length === 0) return result;
    const parallelismOf = (sink: number) => graph.vertices.find((v) => v.nodes.some((n) => n.id === sink))!.parallelism;
    const drop = () => Promise.all(plan.writes.map((w) => this.caches.purge(w.cache.uid)));
    return result.then(async (r) => {
      if (r.state !== "finished") await drop();
      else for (const w of plan.writes) if (!this.invalidated.has(w.cache.id)) this.produced.set(w.cache.id, { parallelism: parallelismOf(w.sink) });
      return r;
    }, async (e: unknown) => {
      await drop();
      throw e;
    });
  }

  /** Cancels jobs still running, deletes the cached streams and closes the connection. */
  close(): Promise<void> {
    // One close however many callers: a second drain would fail and its close() leave the first unsettled.
    return (this.closing ??= this.closeOnce());
  }

  private async closeOnce(): Promise<void> {
    this.closed = true;
    for (const r of this.running) await r.cancel();
    if (this.nc && !this.nc.isClosed()) await this.caches.destroy(this.nc);
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
      ...(request.mayWrite ? { mayWrite: request.mayWrite } : {}),
      retainedCheckpoints: this.options.checkpointsRetained,
    });
    return this.hooks.wrapStateBackend ? this.hooks.wrapStateBackend(backend) : backend;
  }
}
