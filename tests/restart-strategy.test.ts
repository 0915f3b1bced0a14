// Restart strategies as a pure decision on a simulated clock: failure times in, restart-after-delay or
// give-up out.
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { NO_HISTORY, decideRestart, noRestartMends, resolveRestartStrategy, userFunctionBug, type RestartHistory, type RestartStrategy } from "../actors/job/restart-strategy.ts";
import { StateAccessError, StateLimitError } from "../state/errors.ts";
import { errors as natsErrors } from "@nats-io/transport-node";
import { ErrorCode, UserFunctionError, WeirError } from "../runtime/core/errors.ts";
import { resolveJobOptions } from "../runtime/api/options.ts";

const s = suite("restart strategies");

/** Feeds failures at the given times; returns each decision as a delay or "give up". */
function run(strategy: RestartStrategy, times: number[], random = () => 0.5): Array<number | "give up"> {
  let h: RestartHistory = NO_HISTORY;
  return times.map((now) => {
    const d = decideRestart(strategy, h, now, random);
    h = d.history;
    return d.restart ? d.delayMs : "give up";
  });
}

const HOUR = 3_600_000;

s("none never restarts", () => {
  assert.equal(run({ type: "none" }, [0]), ["give up"]);
});

s("fixed-delay: attempts for the job's life, however far apart", () => {
  assert.equal(run({ type: "fixed-delay", attempts: 3, delayMs: 100 }, [0, HOUR, 2 * HOUR, 3 * HOUR]), [100, 100, 100, "give up"]);
  assert.equal(run({ type: "fixed-delay", attempts: 0, delayMs: 100 }, [0]), ["give up"]);
});

s("failure-rate: gives up only when too many failures fall in one window", () => {
  const fr: RestartStrategy = { type: "failure-rate", maxFailures: 3, intervalMs: 60_000, delayMs: 10 };
  // Isolated failures hours apart: forever.
  assert.equal(run(fr, Array.from({ length: 10 }, (_, i) => i * HOUR)), Array(10).fill(10));
  // Four within a minute: the fourth gives up.
  assert.equal(run(fr, [0, 10_000, 20_000, 30_000]), [10, 10, 10, "give up"]);
  // Three in a minute, then the oldest leaves the window: still fine.
  assert.equal(run(fr, [0, 10_000, 20_000, 60_000, 70_000]), [10, 10, 10, 10, 10]);
});

s("exponential-delay: grows, caps, resets after a quiet period, jitters", () => {
  const ex: RestartStrategy = { type: "exponential-delay", initialDelayMs: 1000, maxDelayMs: 5000, multiplier: 2, resetThresholdMs: 60_000, jitter: 0 };
  assert.equal(run(ex, [0, 2000, 5000, 10_000, 16_000, 22_000]), [1000, 2000, 4000, 5000, 5000, 5000]);
  // A quiet minute resets the backoff: isolated failures hours apart restart after 1 s forever.
  assert.equal(run(ex, [0, 2000, 2000 + 60_000, HOUR, 2 * HOUR, 3 * HOUR, 4 * HOUR]), [1000, 2000, 1000, 1000, 1000, 1000, 1000]);
  // Jitter stays within ±10% and never past the maximum.
  const j: RestartStrategy = { ...ex, jitter: 0.1 };
  assert.equal(run(j, [0], () => 0), [900]);
  assert.equal(run(j, [0], () => 0.999999), [1100]);
  assert.equal(run(j, [0, 1, 2, 3, 4], () => 0.999999), [1100, 2200, 4400, 5000, 5000]);
  // attemptsBeforeReset: gives up after that many restarts in a row without a quiet period.
  assert.equal(run({ ...ex, attemptsBeforeReset: 2 }, [0, 1000, 2000]), [1000, 2000, "give up"]);
  assert.equal(run({ ...ex, attemptsBeforeReset: 2 }, [0, 1000, 2000 + 60_000, 3000 + 60_000]), [1000, 2000, 1000, 2000]);
});

s("failures no restart mends end the job at once: state limits, stream set-ups, a recreated stream; a user error or an outage restarts", () => {
  const inUser = (e: Error) => new UserFunctionError("count", 0, "k", e);
  assert.ok(noRestartMends(inUser(new StateLimitError("the encoded key is 3000 characters")), false));
  assert.ok(noRestartMends(new WeirError(ErrorCode.StreamConfig, "no such subject"), false));
  assert.ok(noRestartMends(new WeirError(ErrorCode.StreamRecreated, "recreated"), false));
  assert.not.ok(noRestartMends(inUser(new Error("boom")), false));
  assert.not.ok(noRestartMends(new WeirError(ErrorCode.Transport, "NATS connection lost"), false));
});

s("a user function's own error is its bug even in an outage; one caused by NATS or weir's state is the outage's", () => {
  const bug = new UserFunctionError("count", 0, "k", new Error("Cannot read properties of undefined"));
  assert.ok(userFunctionBug(bug));
  assert.ok(userFunctionBug(new WeirError(ErrorCode.Transport, "subtask count#0 failed", { cause: bug })), "found inside a wrapper");
  assert.not.ok(userFunctionBug(new UserFunctionError("count", 0, "k", new StateAccessError("state request timed out"))));
  assert.not.ok(userFunctionBug(new UserFunctionError("enrich", 1, undefined, new natsErrors.TimeoutError())));
  assert.not.ok(userFunctionBug(new UserFunctionError("enrich", 1, undefined, new Error("wrapped", { cause: new natsErrors.NoRespondersError("svc.lookup") }))));
  assert.not.ok(userFunctionBug(new Error("no responders available")), "not a user function's");
  assert.not.ok(userFunctionBug(new WeirError(ErrorCode.Transport, "NATS connection lost")));
});

s("options: the old { attempts, delayMs } is fixed-delay; defaults; unknown keys are errors", () => {
  const base = { name: "j", checkpointIntervalMs: 1000 };
  assert.equal(resolveJobOptions({ ...base, restartStrategy: { attempts: 2, delayMs: 5 } }).restartStrategy, { type: "fixed-delay", attempts: 2, delayMs: 5 });
  assert.equal(resolveJobOptions(base).restartStrategy, resolveRestartStrategy(undefined, true));
  assert.is(resolveJobOptions(base).restartStrategy.type, "exponential-delay");
  assert.is(resolveJobOptions({ name: "j" }).restartStrategy.type, "none");
  // The default: a failure loop ends after 10 restarts in a row (1 s, 2 s, ... capped at 60 s); isolated failures never.
  const def = resolveJobOptions(base).restartStrategy;
  const loop: number[] = [];
  for (let i = 0, at = 0; i < 11; i++) { loop.push(at); at += 60_000; }
  assert.equal(run(def, loop), [1000, 2000, 4000, 8000, 16000, 32000, 60000, 60000, 60000, 60000, "give up"]);
  assert.equal(run(def, Array.from({ length: 20 }, (_, i) => i * HOUR)), Array(20).fill(1000));
  assert.equal(resolveJobOptions({ ...base, restartStrategy: { type: "failure-rate", maxFailures: 3, intervalMs: 1000, delayMs: 0 } }).restartStrategy,
    { type: "failure-rate", maxFailures: 3, intervalMs: 1000, delayMs: 0 });
  assert.throws(() => resolveJobOptions({ ...base, restartStrategy: { type: "exponential-delay", attempts: 3 } }), /unknown option "restartStrategy\.attempts"/);
  assert.throws(() => resolveJobOptions({ ...base, restartStrategy: { attempts: 3, delayMs: 1, dealyMs: 2 } }), /unknown option "restartStrategy\.dealyMs" \(did you mean "restartStrategy\.delayMs"\?\)/);
  assert.throws(() => resolveJobOptions({ ...base, restartStrategy: { type: "exponential-delay", multiplier: 0.5 } }), /restartStrategy/);
  assert.throws(() => resolveJobOptions({ ...base, restartStrategy: { type: "sometimes" } }), /restartStrategy/);
});

s.run();
