// Job options: the public names (README, Configuration), validated with io-ts (one readable line per bad field), with
// Flink's defaults where Flink has one. CLI flags are applied on top with `withOverrides`.

import * as t from "io-ts";
import { tmpdir } from "node:os";
import { statSync } from "node:fs";
import { decodeOptions, FunctionOption, NonNegativeInt, PositiveInt } from "../core/validation.ts";
import { assertToken } from "../core/names.ts";
import { ErrorCode, WeirError } from "../core/errors.ts";
import { DEFAULT_MAX_PARALLELISM } from "../../state/key-groups.ts";
import { DEFAULT_STATE_BACKEND_CONFIG, StateTuningCodec } from "../../state/config.ts";
import { checkNatsOption, NatsOptionCodec } from "../nats/connection-settings.ts";
import { RestartStrategyCodec, resolveRestartStrategy, checkRestartStrategy } from "../../actors/job/restart-strategy.ts";
import type { ResolvedJobOptions, StateOptions } from "../contracts/job-options.ts";

// The resolved shape lives with the contracts (operators and exec read it); re-exported for the builder.
export { ExecutionMode, WatermarkMode, type ResolvedJobOptions, type StateOptions } from "../contracts/job-options.ts";

const AsyncStateOptionsCodec = t.exact(t.partial({
  enabled: t.boolean,
  bufferSize: PositiveInt,
  bufferTimeoutMs: NonNegativeInt,
  inFlightRecordsLimit: PositiveInt,
  watermarkMode: t.keyof({ strict: null, "out-of-order": null }),
  /** A subtask with records in flight and no progress, or one key's record running, for this long reports itself stalled. */
  stallTimeoutMs: PositiveInt,
}));

export const JobOptionsCodec = t.intersection([
  t.type({ name: t.string }),
  t.exact(t.partial({
    /** A number, or "auto": each operator's parallelism follows the number of workers (Flink's reactive mode). */
    parallelism: t.union([PositiveInt, t.literal("auto")]),
    /** With `parallelism: "auto"`: subtasks of each operator per worker. */
    slotsPerWorker: PositiveInt,
    maxParallelism: PositiveInt,
    mode: t.keyof({ streaming: null, batch: null, automatic: null }),
    stateBackend: t.keyof({ "jetstream-kv": null, heap: null }),
    checkpointIntervalMs: NonNegativeInt,
    checkpointIntervalDuringBacklogMs: NonNegativeInt,
    /**
     * While the job is at rest (nothing happened since its last checkpoint: no record, timer or watermark),
     * a periodic checkpoint at most this often (0: none until something happens); default 10 × checkpointIntervalMs.
     */
    checkpointIntervalWhileIdleMs: NonNegativeInt,
    asyncState: AsyncStateOptionsCodec,
    /** The state backend's own options (state/config.ts): one definition for both. */
    state: StateTuningCodec,
    /** NATS server URL(s), or `{ servers, user, password, token, creds, nkey, tls, context }` (runtime/nats/connection-settings.ts). */
    nats: NatsOptionCodec,
    /**
     * Servers holding each stream and KV bucket the job creates (state, changelog, checkpoints, staging,
     * dead letters, caches, job log): 3 on a three-node cluster survives the loss of one server.
     */
    natsReplicas: PositiveInt,
    /** Records per frame on a channel. */
    frameSize: PositiveInt,
    /** Frames a consumer lets each producer send ahead (credit-based flow control). */
    creditWindow: PositiveInt,
    /**
     * Buffer debloating (Flink's FLIP-183): each consumer sizes the frames its producers send ahead, the
     * records a source reads per poll and a keyed operator keeps in flight to about this many ms of its
     * measured work, so checkpoint barriers do not wait behind a backpressured backlog. 0 turns it off.
     */
    bufferDebloatTargetMs: NonNegativeInt,
    /** How often periodic watermarks are emitted (Flink's autoWatermarkInterval). */
    autoWatermarkIntervalMs: PositiveInt,
    /** Workers: how often each worker sends a heartbeat and is pinged (Flink's heartbeat.interval). */
    heartbeatIntervalMs: PositiveInt,
    /** Workers: silence after which a worker is taken for dead and the leader's lease lapses (Flink's heartbeat.timeout). */
    heartbeatTimeoutMs: PositiveInt,
    /** Where to start: "latest" completed checkpoint/savepoint (default), "none", or a checkpoint id. */
    restore: t.union([t.literal("latest"), t.literal("none"), NonNegativeInt]),
    /** Restore a checkpoint holding state of operator uids the job no longer has, dropping it (Flink's --allowNonRestoredState). */
    allowNonRestoredState: t.boolean,
    /** A checkpoint not complete after this long is aborted. */
    checkpointTimeoutMs: PositiveInt,
    /** Checkpoint timeouts in a row tolerated; the next restarts the job (Flink's tolerable-failed-checkpoints, for timeouts). */
    tolerableCheckpointTimeouts: NonNegativeInt,
    /** Completed checkpoints kept (savepoints are kept until deleted). */
    checkpointsRetained: PositiveInt,
    /** Sorting a backlog (FLIP-327): memory before spilling sorted runs, disk for the runs, where. */
    backlogSort: t.exact(t.partial({ memoryBytes: PositiveInt, diskBytes: PositiveInt, directory: t.refinement(t.string, (s) => s.length > 0, "NonEmptyString") })),
    /** On a failure, restart from the last checkpoint (restart-strategy.ts); `{ attempts, delayMs }` is fixed-delay. */
    restartStrategy: RestartStrategyCodec,
    /** Observe every actor's transitions (xstate inspection events). */
    inspect: FunctionOption,
  })),
], "JobOptions");

export type JobOptions = Omit<t.OutputOf<typeof JobOptionsCodec>, "inspect"> & {
  /** Observe every actor's transitions (xstate inspection events). */
  inspect?: (event: unknown) => void;
};

export function resolveJobOptions(options: unknown): ResolvedJobOptions {
  if (typeof options !== "object" || options === null) {
    throw new WeirError(ErrorCode.InvalidOption, "job options: expected an object with at least a name");
  }
  const { inspect } = options as JobOptions;
  checkRestartStrategy((options as { restartStrategy?: unknown }).restartStrategy, "job options: restartStrategy");
  checkNatsOption((options as { nats?: unknown }).nats, "job options");
  const o = decodeOptions(JobOptionsCodec, options, "job options");
  assertToken("job name", o.name);
  const maxParallelism = o.maxParallelism ?? DEFAULT_MAX_PARALLELISM;
  const reactive = o.parallelism === "auto";
  // With "auto" the leader sets it for each deployment from the workers there are (actors/worker/).
  // Not without any parallelism: `weir run --parallelism auto` may set it.
  if (o.slotsPerWorker !== undefined && typeof o.parallelism === "number") {
    throw new WeirError(ErrorCode.InvalidOption, `job options: slotsPerWorker applies with parallelism "auto" only (the subtasks of each operator per worker), not with parallelism ${o.parallelism}`);
  }
  const slotsPerWorker = o.slotsPerWorker ?? 1;
  const parallelism = o.parallelism === "auto" ? Math.min(slotsPerWorker, maxParallelism) : o.parallelism ?? 1;
  if (parallelism > maxParallelism) {
    throw new WeirError(ErrorCode.InvalidOption, `job options: parallelism ${parallelism} exceeds maxParallelism ${maxParallelism}`);
  }
  const checkpointIntervalMs = o.checkpointIntervalMs ?? 0;
  if (o.mode === "batch" && (checkpointIntervalMs > 0 || (o.checkpointIntervalDuringBacklogMs ?? 0) > 0)) {
    const field = checkpointIntervalMs > 0 ? "checkpointIntervalMs" : "checkpointIntervalDuringBacklogMs";
    throw new WeirError(ErrorCode.InvalidOption, `job options: ${field} with mode "batch": batch jobs take no checkpoints (as Flink's BATCH mode; a failed batch job runs again from the start); remove it or use mode "automatic" or "streaming"`);
  }
  if (o.mode !== "batch" && checkpointIntervalMs === 0 && (o.checkpointIntervalDuringBacklogMs ?? 0) > 0) {
    // Checkpoints are on only with checkpointIntervalMs (as Flink's interval-during-backlog needs checkpointing on): never ignored.
    throw new WeirError(ErrorCode.InvalidOption, `job options: checkpointIntervalDuringBacklogMs ${o.checkpointIntervalDuringBacklogMs} needs checkpointIntervalMs: without it the job takes no checkpoints at all`);
  }
  if (o.checkpointIntervalWhileIdleMs !== undefined && o.checkpointIntervalWhileIdleMs > 0 && o.checkpointIntervalWhileIdleMs < checkpointIntervalMs) {
    throw new WeirError(ErrorCode.InvalidOption, `job options: checkpointIntervalWhileIdleMs ${o.checkpointIntervalWhileIdleMs} is shorter than checkpointIntervalMs ${checkpointIntervalMs}: use checkpointIntervalMs (or more) to checkpoint a job at rest, 0 for not at all`);
  }
  if (o.checkpointIntervalWhileIdleMs !== undefined && (checkpointIntervalMs === 0 || o.mode === "batch")) {
    throw new WeirError(ErrorCode.InvalidOption, `job options: checkpointIntervalWhileIdleMs ${o.checkpointIntervalWhileIdleMs} needs checkpointIntervalMs${o.mode === "batch" ? ` and a mode other than "batch"` : ""}: without it the job takes no checkpoints at all`);
  }
  if (o.restartStrategy !== undefined && o.restartStrategy.type !== "none" && (checkpointIntervalMs === 0 || o.mode === "batch")) {
    // Without checkpoints a failed job has nothing to restart from, so weir ends it: a strategy would be ignored.
    const why = o.mode === "batch" ? `mode "batch" takes no checkpoints (a failed batch job fails; run it again)` : "it needs checkpointIntervalMs: without checkpoints a failed job has nothing to restart from and fails";
    throw new WeirError(ErrorCode.InvalidOption, `job options: restartStrategy "${o.restartStrategy.type}": ${why}`);
  }
  const syncTuned = o.asyncState?.enabled === false ? Object.keys(o.asyncState).find((k) => k !== "enabled") : undefined;
  if (syncTuned !== undefined) {
    // Sync mode runs one record at a time, with no batches, admission, watermark ordering or stall watch.
    throw new WeirError(ErrorCode.InvalidOption, `job options: asyncState.${syncTuned} applies with asyncState.enabled true only: with false each record runs on its own and it would be ignored`);
  }
  if (o.backlogSort?.directory !== undefined) checkSortDirectory(o.backlogSort.directory);
  const heartbeatIntervalMs = o.heartbeatIntervalMs ?? 500;
  const heartbeatTimeoutMs = o.heartbeatTimeoutMs ?? 5000;
  if (heartbeatTimeoutMs < 4 * heartbeatIntervalMs) {
    throw new WeirError(ErrorCode.InvalidOption, `job options: heartbeatTimeoutMs (${heartbeatTimeoutMs}) must be at least 4 × heartbeatIntervalMs (${heartbeatIntervalMs})`);
  }
  return {
    name: o.name,
    parallelism,
    reactive,
    slotsPerWorker,
    maxParallelism,
    // "automatic": batch when every source is bounded and no checkpoints are asked for (decided at launch,
    // execution-mode.ts), else the mixed mode of FLIP-327 (sort during backlog when no checkpoints are taken
    // then); "streaming": every record processed as it comes, backlog or not; "batch": Flink's BATCH mode.
    mode: o.mode ?? "automatic",
    stateBackend: o.stateBackend ?? "jetstream-kv",
    checkpointIntervalMs,
    checkpointIntervalDuringBacklogMs: o.checkpointIntervalDuringBacklogMs ?? checkpointIntervalMs,
    checkpointIntervalWhileIdleMs: o.checkpointIntervalWhileIdleMs ?? 10 * checkpointIntervalMs,
    asyncState: {
      enabled: o.asyncState?.enabled ?? true,
      bufferSize: o.asyncState?.bufferSize ?? 1000,
      bufferTimeoutMs: o.asyncState?.bufferTimeoutMs ?? 1000,
      inFlightRecordsLimit: o.asyncState?.inFlightRecordsLimit ?? 6000,
      watermarkMode: o.asyncState?.watermarkMode ?? "strict",
      stallTimeoutMs: o.asyncState?.stallTimeoutMs ?? 60_000,
    },
    state: resolveStateOptions(o.state),
    ...(o.nats !== undefined ? { nats: o.nats } : {}),
    natsReplicas: o.natsReplicas ?? 1,
    frameSize: o.frameSize ?? 500,
    creditWindow: o.creditWindow ?? 8,
    bufferDebloatTargetMs: o.bufferDebloatTargetMs ?? 1000,
    autoWatermarkIntervalMs: o.autoWatermarkIntervalMs ?? 200,
    heartbeatIntervalMs,
    heartbeatTimeoutMs,
    restore: o.restore ?? "latest",
    allowNonRestoredState: o.allowNonRestoredState ?? false,
    checkpointTimeoutMs: o.checkpointTimeoutMs ?? 60_000,
    // As Flink (tolerable-failed-checkpoints defaults to 0): a checkpoint that cannot complete in a
    // whole timeout means the job is stuck; a restart from the last checkpoint is what gets it going.
    tolerableCheckpointTimeouts: o.tolerableCheckpointTimeouts ?? 0,
    checkpointsRetained: o.checkpointsRetained ?? 3,
    // Flink restarts from checkpoints by default once checkpointing is on (exponential-delay); without
    // checkpoints a restart would replay from nothing, so it fails instead.
    restartStrategy: resolveRestartStrategy(o.restartStrategy, checkpointIntervalMs > 0),
    backlogSort: {
      memoryBytes: o.backlogSort?.memoryBytes ?? 64 * 1024 * 1024,
      diskBytes: o.backlogSort?.diskBytes ?? 10 * 1024 * 1024 * 1024,
      directory: o.backlogSort?.directory ?? tmpdir(),
    },
    ...(inspect ? { inspect } : {}),
  };
}

/** Options about checkpoints that a job without them accepts (so that `--checkpoint-interval 0` runs any job file) and does not use. */
const CHECKPOINT_TUNING = ["checkpointTimeoutMs", "tolerableCheckpointTimeouts", "checkpointsRetained"] as const;

/**
 * The options given that this job will not use, in one line (undefined: none): accepted rather than
 * refused, but said, never silently ignored.
 */
export function unusedOptionsNote(given: JobOptions, job: ResolvedJobOptions): string | undefined {
  if (job.checkpointIntervalMs > 0 && job.mode !== "batch") return undefined;
  const unused = CHECKPOINT_TUNING.filter((k) => given[k] !== undefined);
  if (unused.length === 0) return undefined;
  const why = job.mode === "batch" ? `mode "batch" takes no checkpoints` : "checkpoints are off (checkpointIntervalMs 0)";
  return `job options: ${unused.join(", ")} ${unused.length === 1 ? "has" : "have"} no effect: ${why}`;
}

/** Sorted runs spill there only once a backlog outgrows memory: a missing directory is found now, not mid-job. */
function checkSortDirectory(directory: string): void {
  let isDirectory = false;
  try { isDirectory = statSync(directory).isDirectory(); } catch { /* reported below */ }
  if (!isDirectory) {
    throw new WeirError(ErrorCode.InvalidOption, `job options: backlogSort.directory ${JSON.stringify(directory)} is not an existing directory (a sorted backlog spills its runs there)`);
  }
}

function resolveStateOptions(given: Partial<StateOptions> | undefined): StateOptions {
  const { durability: _decidedByTheJob, ...defaults } = DEFAULT_STATE_BACKEND_CONFIG;
  return { ...defaults, ...given };
}

/** CLI flags and programmatic overrides win over the job module's options. */
export function withOverrides(options: JobOptions, overrides: Partial<JobOptions>): JobOptions {
  const merged: Record<string, unknown> = { ...options };
  for (const [k, v] of Object.entries(overrides)) if (v !== undefined) merged[k] = v;
  return merged as JobOptions;
}
