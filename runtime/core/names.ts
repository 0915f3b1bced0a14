// The one place that builds every NATS subject, KV bucket, stream and key name weir uses.
// Job names and uids become subject tokens and bucket names, so they are restricted to [A-Za-z0-9_-].

import { ErrorCode, WeirError } from "./errors.ts";

const TOKEN = /^[A-Za-z0-9_-]+$/;

export function assertToken(kind: string, value: string): string {
  if (!TOKEN.test(value)) {
    throw new WeirError(ErrorCode.InvalidOption, `${kind} "${value}" may only contain letters, digits, "_" and "-"`);
  }
  return value;
}

/** Lower-case token from a free-form operator name ("Count words" → "count-words"). */
export function slug(name: string): string {
  return name.toLowerCase().replace(/[^a-z0-9_-]+/g, "-").replace(/^-+|-+$/g, "").slice(0, 40) || "op";
}

/**
 * Subjects, buckets and streams of one job. `attempt` separates one run of the job from the next.
 * `replicas` is how many servers hold each stream and KV bucket the job creates (the job's `natsReplicas`).
 */
export class JobNames {
  constructor(readonly job: string, readonly replicas = 1) {
    assertToken("job name", job);
  }
  /** Malformed input, with the reason. */
  get dlq(): string { return `weir.${this.job}.dlq`; }
  /** Control requests: status, stop, cancel, checkpoint, fail-subtask. */
  control(verb: string): string { return `weir.${this.job}.ctl.${verb}`; }
  /**
   * The job's end, published once by the job as it ends: `{ job, state, attempt, failure? }`. Once the
   * job is gone nothing answers its control subjects, so `weir stop` learns from this how it ended.
   */
  get ended(): string { return `weir.${this.job}.ended`; }
  /** Records, watermarks, barriers, attributes and end-of-input from one producer to one consumer subtask. */
  channel(attempt: string, edge: number, from: number, to: number): string {
    return `weir.${this.job}.run.${attempt}.ch.${edge}.${from}.${to}`;
  }
  /** The subtasks of one Sources.hybrid tell each other which parts they finished (runtime/sources/hybrid-switch.ts). */
  hybridSwitch(attempt: string, operatorUid: string): string {
    return `weir.${this.job}.run.${attempt}.hybrid.${assertToken("operator uid", operatorUid)}`;
  }
  /** Credits granted to one producer subtask by its consumers. */
  credits(attempt: string, vertex: number, subtask: number): string {
    return `weir.${this.job}.run.${attempt}.cr.${vertex}.${subtask}`;
  }
  /** KV bucket of the job's keyed state. */
  get stateBucket(): string { return `weir_${this.job}_state`; }
  /** KV bucket of checkpoint metadata. */
  get checkpointBucket(): string { return `weir_${this.job}_ckpt`; }
  /** Stream of state changelog chunks. */
  get changelogStream(): string { return `weir_${this.job}_changelog`; }
  changelogSubject(vertexUid: string, keyGroup: number): string {
    return `weir.${this.job}.changelog.${vertexUid}.${keyGroup}`;
  }
  /**
   * Stream of the job's fenced log (leases, deployments, checkpoint commits of a distributed job): one
   * subject per record kind, the last record of each kept.
   */
  get logStream(): string { return `weir_${this.job}_log`; }
  logSubject(kind: string): string { return `weir.${this.job}.log.${assertToken("log record kind", kind)}`; }
  /** Every subject of `logStream`. */
  get logSubjects(): string { return `weir.${this.job}.log.>`; }
  /** Where the log stream republishes each record it stored (rejected appends never show up here). */
  get logStoredSubjects(): string { return `weir.${this.job}.logged.>`; }
  /** Every worker of a distributed job publishes its heartbeat here (core NATS). */
  get workerHeartbeats(): string { return `weir.${this.job}.workers.hb`; }
  /**
   * A view asks every worker for a full heartbeat here (empty body): most heartbeats are packed against
   * the worker's last full one, which a view started since then lacks. Not matched by `workerHeartbeats`
   * (an exact subject), so no view reads a request as a heartbeat.
   */
  get workerHeartbeatsWanted(): string { return `weir.${this.job}.workers.hb.full`; }
  /** Subject prefix of requests to one worker. */
  workerInbox(workerId: string): string { return `weir.${this.job}.w.${assertToken("worker id", workerId)}`; }
  /** What the workers' subtasks report to the leading worker (acks, failures, status). */
  get leaderReports(): string { return `weir.${this.job}.leader.reports`; }
  /** A worker answers here while its connection is alive: "no responders" means it is gone. */
  workerPing(workerId: string): string { return `${this.workerInbox(workerId)}.ping`; }
  /** The leader's commands to one worker (actors/worker/protocol.ts). */
  workerCommands(workerId: string): string { return `${this.workerInbox(workerId)}.cmd`; }
}

/** Names shared by every job. */
export const GlobalNames = {
  /** Every running job answers here with its name (discovery for `weir status`). */
  jobsPing: "weir.jobs.ping",
  /** KV bucket with the last known status of each job (for jobs no longer running). */
  jobsBucket: "weir_jobs",
} as const;

// ---- connector names (sources and sinks) ----

/** Names the connectors of one job use; kept beside JobNames so every name is built in this file. */
export class ConnectorNames {
  constructor(private readonly names: JobNames) {}
  /** Default queue group of a core-NATS source: every subtask of the operator shares it. */
  sourceQueue(operatorUid: string): string { return `weir.${this.names.job}.${operatorUid}`; }
  /**
   * Name prefix of a JetStream source's ordered consumer (the client appends `_<serial>`). `unique` keeps
   * a restarted job from colliding with its predecessor's consumer, which lingers until it goes inactive.
   */
  sourceConsumerPrefix(operatorUid: string, subtask: number, unique: string): string {
    return `weir_${this.names.job}_${slug(operatorUid)}_${subtask}_${unique}`;
  }
  /**
   * `Nats-Msg-Id` of the JetStream sink's n-th record from one subtask: `<job>:<uid>:<subtask>:<epoch>:<n>`.
   * Deterministic once `epoch` and `n` are restored from a checkpoint, so a replay re-publishes the same
   * ids and the stream's duplicate window drops them. `epoch` is picked when a writer starts without
   * restored state: without it a fresh run within the duplicate window would reuse the ids of the run
   * before and have its output dropped as duplicates.
   */
  sinkMessageId(operatorUid: string, subtask: number, epoch: string, sequence: number): string {
    return `${this.names.job}:${operatorUid}:${subtask}:${epoch}:${sequence}`;
  }
  /** Stream where exactly-once sinks stage each checkpoint's output until the checkpoint commits. */
  get stagingStream(): string { return `weir_${this.names.job}_staging`; }
  stagingSubject(operatorUid: string, subtask: number): string { return `weir.${this.names.job}.staging.${operatorUid}.${subtask}`; }
  /** `Nats-Msg-Id` of the i-th record a sink subtask committed with checkpoint `checkpointId` (deterministic on replay). */
  committedMessageId(operatorUid: string, subtask: number, checkpointId: number, i: number): string {
    return `${this.names.job}:${operatorUid}:${subtask}:c${checkpointId}:${i}`;
  }
  /** The stream that keeps the job's dead letters (as actors/subtask/dead-letters.ts creates it). */
  get dlqStream(): string { return `weir_${this.names.job}_dlq`; }
  /** Stream of the cached streams (DataStream.cache) of one environment, `env` a token unique to it. */
  cacheStream(env: string): string { return `weir_${this.names.job}_cache_${env}`; }
  /** Every subject of `cacheStream(env)`. */
  cacheSubjects(env: string): string { return `weir.${this.names.job}.cache.${env}.>`; }
  /** Every subject of one cached stream. */
  cacheFilter(env: string, cacheUid: string): string { return `weir.${this.names.job}.cache.${env}.${cacheUid}.>`; }
  /** Frames of one cached stream written by one subtask. */
  cacheSubject(env: string, cacheUid: string, subtask: number): string { return `weir.${this.names.job}.cache.${env}.${cacheUid}.${subtask}`; }
}
