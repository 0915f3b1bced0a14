// What a scenario's steps, waits and expectations share: the run they act on, and how a step fails.

import { describeError } from "../runtime/core/errors.ts";
import { StepFailure } from "./step-failure.ts";
import type { JobProcess } from "./job-process.ts";
import type { ScenarioNats } from "./nats-io.ts";
import type { Scenario } from "./format.ts";

export const POLL_MS = 50;
export const SETTLE_MS = 300;
export const DEFAULT_EXPECT_TIMEOUT_MS = 5000;

export { StepFailure } from "./step-failure.ts";

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** The one line a failed step reports. */
export function stepFailure(e: unknown): string {
  return e instanceof StepFailure ? e.message : describeError(e);
}

/** The running scenario as its waits and expectations see it. */
export interface ScenarioState {
  readonly s: Scenario;
  readonly nats: ScenarioNats;
  readonly jobName: string;
  /** The latest process of the worker "main" (the job process a scenario starts without a name), if any. */
  readonly proc: JobProcess | undefined;
  /** Whether any worker process of the job is still running. */
  readonly running: boolean;
  /** Time allowed for expectations to settle, unless an expectation says otherwise. */
  readonly expectTimeoutMs: number;
}
