// The job's options as the engine reads them, resolved with their defaults (types and two small
// constant objects). The builder's codec and defaults are runtime/api/options.ts; operators and the
// actors read this shape, so it sits below both.

import type { StateBackendConfig } from "../../state/config.ts";

export const ExecutionMode = { Streaming: "streaming", Batch: "batch", Automatic: "automatic" } as const;
export type ExecutionMode = (typeof ExecutionMode)[keyof typeof ExecutionMode];
export const WatermarkMode = { Strict: "strict", OutOfOrder: "out-of-order" } as const;
export type WatermarkMode = (typeof WatermarkMode)[keyof typeof WatermarkMode];

/** A restart strategy with its defaults filled in (decided by actors/job/restart-strategy.ts). */
export type RestartStrategy =
  | { readonly type: "none" }
  | { readonly type: "fixed-delay"; readonly attempts: number; readonly delayMs: number }
  | { readonly type: "failure-rate"; readonly maxFailures: number; readonly intervalMs: number; readonly delayMs: number }
  | {
    readonly type: "exponential-delay";
    readonly initialDelayMs: number;
    readonly maxDelayMs: number;
    readonly multiplier: number;
    readonly resetThresholdMs: number;
    readonly jitter: number;
    readonly attemptsBeforeReset?: number;
  };

/** The backend's options a job tunes; `durability` follows from whether the job checkpoints. */
export type StateOptions = Omit<StateBackendConfig, "durability">;

export interface ResolvedJobOptions {
  readonly name: string;
  /** Default parallelism of the operators (with `reactive`, of the first deployment). */
  readonly parallelism: number;
  /** `parallelism: "auto"`: each deployment sizes the operators from the workers (× slotsPerWorker). */
  readonly reactive: boolean;
  readonly slotsPerWorker: number;
  readonly maxParallelism: number;
  readonly mode: ExecutionMode;
  readonly stateBackend: "jetstream-kv" | "heap";
  readonly checkpointIntervalMs: number;
  readonly checkpointIntervalDuringBacklogMs: number;
  /** While the job is at rest, periodic checkpoints at most this often (0: none); see actors/checkpoint/idle-checkpoints.ts. */
  readonly checkpointIntervalWhileIdleMs: number;
  readonly asyncState: {
    readonly enabled: boolean;
    readonly bufferSize: number;
    readonly bufferTimeoutMs: number;
    readonly inFlightRecordsLimit: number;
    readonly watermarkMode: WatermarkMode;
    readonly stallTimeoutMs: number;
  };
  readonly state: StateOptions;
  /** A URL (several comma-separated), or the connection settings (runtime/nats/connection-settings.ts). */
  readonly nats?: string | NatsConnectionOptions;
  /** Replicas of every stream and KV bucket the job creates. */
  readonly natsReplicas: number;
  readonly frameSize: number;
  readonly creditWindow: number;
  readonly bufferDebloatTargetMs: number;
  readonly autoWatermarkIntervalMs: number;
  /** Workers: how often each says it is alive and is asked (heartbeats, pings). */
  readonly heartbeatIntervalMs: number;
  /** Workers: silence after which a worker is taken for dead and a leader loses its lease. */
  readonly heartbeatTimeoutMs: number;
  readonly restore: "latest" | "none" | number;
  /** Restore a checkpoint even when it holds state of operator uids the job no longer has (dropped). */
  readonly allowNonRestoredState: boolean;
  readonly checkpointTimeoutMs: number;
  readonly tolerableCheckpointTimeouts: number;
  readonly checkpointsRetained: number;
  readonly restartStrategy: RestartStrategy;
  readonly backlogSort: { readonly memoryBytes: number; readonly diskBytes: number; readonly directory: string };
  readonly inspect?: (event: unknown) => void;
}


/**
 * Whether keyed operators sort their input while it is in backlog (FLIP-327): not in streaming mode, and
 * only when no checkpoints are taken during backlog (a sorted buffer is not part of a checkpoint).
 */
export function sortsBacklog(job: Pick<ResolvedJobOptions, "mode" | "checkpointIntervalDuringBacklogMs">): boolean {
  return job.mode !== "streaming" && job.checkpointIntervalDuringBacklogMs === 0;
}

/** The job option `nats` as an object: where and how a job connects (every field optional). */
export interface NatsConnectionOptions {
  /** One URL, several comma-separated, or a list. User/password or a token in a URL are used, never printed. */
  readonly servers?: string | readonly string[];
  readonly user?: string;
  readonly password?: string;
  readonly token?: string;
  /** A credentials file (user JWT and NKey seed), as `nsc` writes it. */
  readonly creds?: string;
  /** A file holding a user NKey seed (`SU...`). */
  readonly nkey?: string;
  /** PEM files: the CA that signed the server's certificate, and a client certificate with its key. */
  readonly tls?: { readonly ca?: string; readonly cert?: string; readonly key?: string };
  /** A context of the nats CLI (`$XDG_CONFIG_HOME/nats/context/<name>.json`). */
  readonly context?: string;
}
