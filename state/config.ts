// Configuration of the keyed state backends, validated with io-ts. Defaults suit a 2-core machine with
// a few hundred MB for a worker: the cache holds the hot set, the dirty budget bounds unflushed writes.

import * as t from "io-ts";
import { PathReporter } from "io-ts/lib/PathReporter.js";
import { ErrorCode, WeirError } from "../runtime/core/errors.ts";

interface PositiveIntBrand { readonly PositiveInt: unique symbol }
const PositiveInt = t.brand(t.number, (n): n is t.Branded<number, PositiveIntBrand> => Number.isInteger(n) && n > 0, "PositiveInt");
interface NonNegativeIntBrand { readonly NonNegativeInt: unique symbol }
const NonNegativeInt = t.brand(t.number, (n): n is t.Branded<number, NonNegativeIntBrand> => Number.isInteger(n) && n >= 0, "NonNegativeInt");

/** What a job may tune (its `state` option); the job itself decides `durability` (checkpoints or not). */
const tuning = {
  /** Cache bound, entries (clean and dirty together). */
  cacheMaxEntries: PositiveInt,
  /** Cache bound, estimated bytes of keys and values (clean and dirty together). */
  cacheMaxBytes: PositiveInt,
  /** Dirty (written, not yet flushed) entries that start a background flush; twice this blocks new batches until flushed. */
  dirtyMaxEntries: PositiveInt,
  dirtyMaxBytes: PositiveInt,
  /** Background flush of dirty entries every this many ms; 0 = only on budget, flush() and close(). */
  flushIntervalMs: NonNegativeInt,
  /** Remote reads in flight at most. */
  getConcurrency: PositiveInt,
  /** Remote writes in flight at most. */
  putConcurrency: PositiveInt,
  /** Largest value stored (split in chunks above the server's max payload); larger ones are refused. */
  maxValueBytes: PositiveInt,
  /** A remote read or write not answered within this time fails. */
  requestTimeoutMs: PositiveInt,
  /**
   * Durability "checkpoint": write completed checkpoints' changes to KV at most this often (and when
   * they hold half the dirty budget); 0 = after every checkpoint. Longer means fewer KV writes of hot
   * keys, and more changelog to replay on recovery (bounded by the dirty budget).
   */
  materializeIntervalMs: NonNegativeInt,
};

/** The job option `state`: every tunable of the backend, nothing else. */
export const StateTuningCodec = t.exact(t.partial(tuning), "StateOptions");

export const StateBackendConfigCodec = t.exact(t.partial({
  ...tuning,
  /**
   * "flush": dirty entries go straight to KV (budget, timer, flush, close): no checkpoints.
   * "checkpoint": nothing reaches KV before a checkpoint commits: deltas go to the changelog stream at
   * snapshot() and are materialized into KV at notifyCheckpointComplete() (docs/state.md).
   */
  durability: t.keyof({ flush: null, checkpoint: null }),
}), "StateBackendConfig");

export interface StateBackendConfig {
  readonly cacheMaxEntries: number;
  readonly cacheMaxBytes: number;
  readonly dirtyMaxEntries: number;
  readonly dirtyMaxBytes: number;
  readonly flushIntervalMs: number;
  readonly getConcurrency: number;
  readonly putConcurrency: number;
  readonly maxValueBytes: number;
  readonly requestTimeoutMs: number;
  readonly durability: "flush" | "checkpoint";
  readonly materializeIntervalMs: number;
}

export const DEFAULT_STATE_BACKEND_CONFIG: StateBackendConfig = Object.freeze({
  cacheMaxEntries: 200_000,
  cacheMaxBytes: 64 * 1024 * 1024,
  dirtyMaxEntries: 150_000,
  dirtyMaxBytes: 32 * 1024 * 1024,
  // Without checkpoints a crash loses what was not flushed anyway (and there is no recovery point to be
  // consistent with); a short interval would rewrite hot keys over and over at ~90k writes/s.
  flushIntervalMs: 10_000,
  getConcurrency: 512,
  putConcurrency: 1024,
  maxValueBytes: 16 * 1024 * 1024,
  requestTimeoutMs: 10_000,
  durability: "flush",
  materializeIntervalMs: 10_000,
});

/** Validates a (partial) configuration and fills in the defaults. */
export function resolveStateBackendConfig(input: unknown = {}): StateBackendConfig {
  // t.exact would drop an unknown key silently: refuse it instead.
  const unknown = Object.keys(input ?? {}).filter((k) => !(k in StateBackendConfigCodec.type.props));
  if (unknown.length) {
    throw new WeirError(ErrorCode.InvalidOption, `invalid state backend config: unknown option "${unknown[0]}"; allowed: ${Object.keys(StateBackendConfigCodec.type.props).join(", ")}`);
  }
  const decoded = StateBackendConfigCodec.decode(input ?? {});
  if (decoded._tag === "Left") {
    throw new WeirError(ErrorCode.InvalidOption, `invalid state backend config: ${PathReporter.report(decoded).join("; ")}`);
  }
  const c = { ...DEFAULT_STATE_BACKEND_CONFIG, ...(decoded.right as Partial<StateBackendConfig>) };
  return Object.freeze(c);
}
