// Flink's restart strategies, as one pure decision: given the strategy, what happened before (a small
// state value) and the time of a new failure, restart after some delay or give up. No timers, no I/O:
// the job runner owns the clock and applies the decision; tests drive it with plain numbers.
//
//   none               never restart
//   fixed-delay        at most `attempts` restarts in the job's life, `delayMs` apart
//   failure-rate       give up when more than `maxFailures` failures fall within `intervalMs`
//   exponential-delay  delays initialDelayMs, ×multiplier, capped at maxDelayMs; back to initialDelayMs once
//                      the job ran `resetThresholdMs` without failing; ±jitter (a fraction) against restart
//                      storms of many jobs; optionally give up after `attemptsBeforeReset` restarts in a row
//                      without a reset (Flink's attempts-before-reset-backoff; default 10)

import * as t from "io-ts";
import { ErrorCode, WeirError, hasErrorCode } from "../../runtime/core/errors.ts";
import { StateCodecError, StateLimitError } from "../../state/errors.ts";
import { errors as natsErrors } from "@nats-io/transport-node";
import { JetStreamApiError, JetStreamError } from "@nats-io/jetstream";
import { isTransientJetStreamError } from "../../state/backends/jetstream-retry.ts";
import { preview } from "../../runtime/core/preview.ts";
import { closest } from "../../runtime/core/validation.ts";
import { isLeft } from "fp-ts/lib/Either.js";
import { NonNegativeInt, PositiveInt, describeErrors } from "../../runtime/core/validation.ts";
import type { RestartStrategy } from "../../runtime/contracts/job-options.ts";

export const RestartStrategyType = {
  None: "none",
  FixedDelay: "fixed-delay",
  FailureRate: "failure-rate",
  ExponentialDelay: "exponential-delay",
} as const;
export type RestartStrategyType = (typeof RestartStrategyType)[keyof typeof RestartStrategyType];

const Fraction = t.refinement(t.number, (n) => n >= 0 && n <= 1, "a number from 0 to 1");
const Multiplier = t.refinement(t.number, (n) => Number.isFinite(n) && n >= 1, "a number >= 1");

const ExponentialFields = {
  initialDelayMs: NonNegativeInt,
  maxDelayMs: NonNegativeInt,
  multiplier: Multiplier,
  resetThresholdMs: PositiveInt,
  jitter: Fraction,
  attemptsBeforeReset: PositiveInt,
};
/** The fields of each type, without `type` (checked first, so errors name the field at fault). */
const FIELDS = {
  "none": t.type({}),
  "fixed-delay": t.type({ attempts: NonNegativeInt, delayMs: NonNegativeInt }),
  "failure-rate": t.type({ maxFailures: NonNegativeInt, intervalMs: PositiveInt, delayMs: NonNegativeInt }),
  "exponential-delay": t.partial(ExponentialFields),
} as const;
const CODECS = {
  "none": t.exact(t.type({ type: t.literal("none") })),
  "fixed-delay": t.exact(t.intersection([FIELDS["fixed-delay"], t.partial({ type: t.literal("fixed-delay") })])),
  "failure-rate": t.exact(t.intersection([t.type({ type: t.literal("failure-rate") }), FIELDS["failure-rate"]])),
  "exponential-delay": t.exact(t.intersection([t.type({ type: t.literal("exponential-delay") }), FIELDS["exponential-delay"]])),
} as const;

/** The option as users write it; `{ attempts, delayMs }` without a type is fixed-delay. */
export const RestartStrategyCodec = t.union([CODECS.none, CODECS["fixed-delay"], CODECS["failure-rate"], CODECS["exponential-delay"]], "RestartStrategy");

export type RestartStrategyOption = t.TypeOf<typeof RestartStrategyCodec>;

export type { RestartStrategy };

/**
 * Defaults for a daemon (Flink: 1 s, ×1.5, max 1 min, reset after 1 h, jitter 0.1, no attempt limit):
 * the first restart comes after 1 s, five quiet minutes count as recovered, so isolated failures hours
 * apart restart quickly forever; a failure loop (a bug hit on every replay) backs off to a minute and
 * ends the job after 10 restarts in a row (~5 minutes), so `weir run` still exits with the reason.
 */
export const EXPONENTIAL_DELAY_DEFAULTS = {
  initialDelayMs: 1000,
  maxDelayMs: 60_000,
  multiplier: 2,
  resetThresholdMs: 5 * 60_000,
  jitter: 0.1,
  attemptsBeforeReset: 10,
} as const;

const KEYS: Record<RestartStrategyType, readonly string[]> = {
  "none": ["type"],
  "fixed-delay": ["type", "attempts", "delayMs"],
  "failure-rate": ["type", "maxFailures", "intervalMs", "delayMs"],
  "exponential-delay": ["type", "initialDelayMs", "maxDelayMs", "multiplier", "resetThresholdMs", "jitter", "attemptsBeforeReset"],
};

/**
 * Checks the option against the codec of its `type` (a union's error would name the first member, not
 * the field at fault) and rejects keys that type does not have (the codec would strip them silently).
 */
export function checkRestartStrategy(raw: unknown, what: string): void {
  if (raw === undefined) return;
  if (typeof raw !== "object" || raw === null) throw new WeirError(ErrorCode.InvalidOption, `${what}: expected an object, got ${preview(raw)}`);
  const type = (raw as { type?: unknown }).type ?? "fixed-delay";
  if (typeof type !== "string" || !Object.hasOwn(KEYS, type)) {
    throw new WeirError(ErrorCode.InvalidOption, `${what}.type: expected one of ${Object.keys(KEYS).map((k) => `"${k}"`).join(", ")}, got ${preview(type)}`);
  }
  const allowed = KEYS[type as RestartStrategyType];
  const key = Object.keys(raw).find((k) => !allowed.includes(k));
  if (key !== undefined) {
    // The same shape of line as every other unknown option (validation.ts), named as a nested key.
    const [where, path] = splitWhat(what);
    const guess = closest(key, allowed);
    const hint = guess ? ` (did you mean "${path}.${guess}"?)` : "";
    throw new WeirError(ErrorCode.InvalidOption, `${where}: unknown option "${path}.${key}"${hint}; allowed in ${path}: ${allowed.join(", ")} (type "${type}")`);
  }
  const { type: _type, ...fields } = raw as Record<string, unknown>;
  const r = (FIELDS[type as RestartStrategyType] as t.Type<unknown, unknown, unknown>).decode(fields);
  if (isLeft(r)) throw new WeirError(ErrorCode.InvalidOption, `${what}.${describeErrors(r.left)}`);
  const { initialDelayMs, maxDelayMs } = fields as { initialDelayMs?: number; maxDelayMs?: number };
  if (initialDelayMs !== undefined && maxDelayMs !== undefined && maxDelayMs < initialDelayMs) {
    throw new WeirError(ErrorCode.InvalidOption, `${what}.maxDelayMs (${maxDelayMs}) is below initialDelayMs (${initialDelayMs}): the delays start at initialDelayMs and grow up to maxDelayMs`);
  }
  // The cap then is initialDelayMs itself: every delay would be the first, the multiplier ignored.
  const { multiplier } = fields as { multiplier?: number };
  if (multiplier !== undefined && maxDelayMs === undefined && initialDelayMs !== undefined && initialDelayMs >= EXPONENTIAL_DELAY_DEFAULTS.maxDelayMs) {
    throw new WeirError(ErrorCode.InvalidOption, `${what}.initialDelayMs (${initialDelayMs}) is not below the default maxDelayMs (${EXPONENTIAL_DELAY_DEFAULTS.maxDelayMs}): the delays could not grow by the multiplier; give maxDelayMs too`);
  }
}

/** "job options: restartStrategy" → ["job options", "restartStrategy"]. */
function splitWhat(what: string): [string, string] {
  const i = what.lastIndexOf(": ");
  return i < 0 ? ["options", what] : [what.slice(0, i), what.slice(i + 2)];
}

export function resolveRestartStrategy(option: RestartStrategyOption | undefined, checkpointing: boolean): RestartStrategy {
  // Without checkpoints a restart would replay from nothing: Flink's default is then no restart.
  if (option === undefined) return checkpointing ? { type: "exponential-delay", ...EXPONENTIAL_DELAY_DEFAULTS } : { type: "none" };
  switch (option.type) {
    case "none": return { type: "none" };
    case "failure-rate": return { type: "failure-rate", maxFailures: option.maxFailures, intervalMs: option.intervalMs, delayMs: option.delayMs };
    case "exponential-delay": {
      const initialDelayMs = option.initialDelayMs ?? EXPONENTIAL_DELAY_DEFAULTS.initialDelayMs;
      return {
        type: "exponential-delay",
        initialDelayMs,
        maxDelayMs: Math.max(initialDelayMs, option.maxDelayMs ?? EXPONENTIAL_DELAY_DEFAULTS.maxDelayMs),
        multiplier: option.multiplier ?? EXPONENTIAL_DELAY_DEFAULTS.multiplier,
        resetThresholdMs: option.resetThresholdMs ?? EXPONENTIAL_DELAY_DEFAULTS.resetThresholdMs,
        jitter: option.jitter ?? EXPONENTIAL_DELAY_DEFAULTS.jitter,
        attemptsBeforeReset: option.attemptsBeforeReset ?? EXPONENTIAL_DELAY_DEFAULTS.attemptsBeforeReset,
      };
    }
    default: return { type: "fixed-delay", attempts: option.attempts, delayMs: option.delayMs };
  }
}

/** What the strategy remembers between failures (small: the failure-rate window holds at most maxFailures + 1 times). */
export interface RestartHistory {
  /** Restarts so far in the job's life. */
  readonly restarts: number;
  /** Times of recent failures (failure-rate: those in the window; otherwise the last one). */
  readonly failureTimes: readonly number[];
  /** exponential-delay: the last delay, and restarts since the backoff was last reset. */
  readonly lastDelayMs?: number;
  readonly sinceReset: number;
}

export const NO_HISTORY: RestartHistory = { restarts: 0, failureTimes: [], sinceReset: 0 };

export type RestartDecision =
  | { readonly restart: true; readonly delayMs: number; readonly history: RestartHistory }
  | { readonly restart: false; readonly reason: string; readonly history: RestartHistory };

/** A failure happened at `now`: restart after `delayMs`, or give up (with why). `random` in [0, 1) for jitter. */
export function decideRestart(strategy: RestartStrategy, history: RestartHistory, now: number, random: () => number = Math.random): RestartDecision {
  const last = history.failureTimes[history.failureTimes.length - 1];
  switch (strategy.type) {
    case "none":
      return { restart: false, reason: "the restart strategy is none", history: { ...history, failureTimes: [now] } };
    case "fixed-delay": {
      const h = { ...history, failureTimes: [now] };
      if (history.restarts >= strategy.attempts) return { restart: false, reason: `fixed-delay: ${strategy.attempts} restart attempt(s) used`, history: h };
      return { restart: true, delayMs: strategy.delayMs, history: { ...h, restarts: history.restarts + 1 } };
    }
    case "failure-rate": {
      const recent = [...history.failureTimes.filter((at) => now - at < strategy.intervalMs), now];
      const h = { ...history, failureTimes: recent.slice(-(strategy.maxFailures + 1)) };
      if (recent.length > strategy.maxFailures) {
        return { restart: false, reason: `failure-rate: ${recent.length} failures within ${strategy.intervalMs} ms (at most ${strategy.maxFailures} allowed)`, history: h };
      }
      return { restart: true, delayMs: strategy.delayMs, history: { ...h, restarts: history.restarts + 1 } };
    }
    case "exponential-delay": {
      const reset = history.lastDelayMs === undefined || (last !== undefined && now - last >= strategy.resetThresholdMs);
      const sinceReset = reset ? 0 : history.sinceReset;
      const h = { ...history, failureTimes: [now], sinceReset };
      if (strategy.attemptsBeforeReset !== undefined && sinceReset >= strategy.attemptsBeforeReset) {
        return { restart: false, reason: `exponential-delay: ${sinceReset} restarts without ${strategy.resetThresholdMs} ms free of failures`, history: h };
      }
      const base = reset ? strategy.initialDelayMs : Math.min(strategy.maxDelayMs, history.lastDelayMs! * strategy.multiplier);
      // Jitter around the base, never past the maximum; the next delay grows from the base, not the jittered value.
      const jittered = Math.round(Math.min(strategy.maxDelayMs, Math.max(0, base * (1 + strategy.jitter * (2 * random() - 1)))));
      return { restart: true, delayMs: jittered, history: { ...h, restarts: history.restarts + 1, lastDelayMs: base, sinceReset: sinceReset + 1 } };
    }
  }
}

/** The log line of a restart (or a rescale) as it begins. */
export function describeRestartBeginning(r: { rescale: string | undefined; outage: boolean; lostWorker: boolean; counted: number; strategy: RestartStrategy; fromCheckpoint: number | undefined }): string {
  const from = r.fromCheckpoint !== undefined ? `checkpoint ${r.fromCheckpoint}` : "the beginning";
  if (r.rescale !== undefined) return `rescaling (${r.rescale}) from ${from}`;
  if (r.outage) return `restarting after ${r.lostWorker ? "the loss of a worker" : "the NATS outage"} from ${from} (not counted against the restart strategy)`;
  return `restarting (restart ${r.counted}, ${describeRestartStrategy(r.strategy)}) from ${from}`;
}

/** The log line of a stop that came while the job failed over (it ends without a final checkpoint). */
export function describeStopWhileRestarting(latestCheckpoint: number | undefined): string {
  return `stopped while failing over, without a final checkpoint: the next run resumes from ${latestCheckpoint !== undefined ? `checkpoint ${latestCheckpoint}` : "the beginning"}`;
}

/** `weir run` / `weir stop`'s one line for a job stopped while failing over (a non-zero exit). */
export function stoppedWhileFailing(job: string, failure: string): string {
  return `job ${job} was stopped while failing over, without a final checkpoint (the next run resumes from its latest checkpoint); it had failed: ${failure}`;
}

/** "exponential-delay (1000-60000 ms ×2, reset after 300000 ms)": for `weir status` and logs. */
export function describeRestartStrategy(s: RestartStrategy): string {
  switch (s.type) {
    case "none": return "none";
    case "fixed-delay": return `fixed-delay (${s.attempts} attempts, ${s.delayMs} ms apart)`;
    case "failure-rate": return `failure-rate (at most ${s.maxFailures} failures per ${s.intervalMs} ms, ${s.delayMs} ms apart)`;
    case "exponential-delay": return `exponential-delay (${s.initialDelayMs}-${s.maxDelayMs} ms ×${s.multiplier}, reset after ${s.resetThresholdMs} ms${s.attemptsBeforeReset !== undefined ? `, at most ${s.attemptsBeforeReset} in a row` : ""})`;
  }
}

/**
 * Failures no restart mends, which end the job at once: the run's first restore failing (`deploying`), a
 * NATS permission, a source stream deleted and created again under the job, a stream set up so that it
 * cannot work (its retention, its subjects), a key or value over the state limits, and stored state its codec cannot read (the codec changed since the state was written:
 * every restart reads the same value, as Flink refuses a restore whose serializer is incompatible).
 */
export function noRestartMends(e: unknown, deploying: boolean): boolean {
  if ((deploying && hasErrorCode(e, ErrorCode.Restore)) || hasErrorCode(e, ErrorCode.NatsPermission) || hasErrorCode(e, ErrorCode.StreamRecreated) || hasErrorCode(e, ErrorCode.StreamConfig)) return true;
  for (let x: unknown = e, depth = 0; x instanceof Error && depth < 10; x = x.cause, depth++) {
    if (x instanceof StateCodecError && x.operation === "read") return true;
    // A key or value over the KV backend's limits: the record is read again after every restart.
    if (x instanceof StateLimitError) return true;
  }
  return false;
}

const NATS_ERROR_CLASSES: ReadonlyArray<abstract new (...args: never[]) => Error> = [...Object.values(natsErrors), JetStreamError, JetStreamApiError];

/**
 * Whether `e` is a user function's own error, whatever the connection did: a UserFunctionError with
 * nothing from NATS or weir (state access, transport, a timeout) among its causes. Such a failure during or
 * just after an outage still counts against the restart strategy: a bug there backs off as anywhere else,
 * where one whose function awaited state (or NATS) that the outage held up is put down to the outage.
 */
export function userFunctionBug(e: unknown): boolean {
  let x: unknown = e;
  for (let depth = 0; x instanceof Error && !(x instanceof WeirError && x.code === ErrorCode.UserFunction); depth++) {
    if (depth >= 10) return false;
    x = x.cause;
  }
  if (!(x instanceof Error)) return false;
  for (let c = x.cause, depth = 0; c !== undefined && c !== null && depth < 10; c = (c as Error).cause, depth++) {
    if (c instanceof WeirError || NATS_ERROR_CLASSES.some((k) => c instanceof k) || isTransientJetStreamError(c)) return false;
  }
  return true;
}
