// defineJob: what a job module default-exports; `weir run` (or a test) instantiates it.

import { resolveJobOptions, type JobOptions } from "./options.ts";
import { StreamEnvironment, type EnvironmentHooks } from "./environment.ts";
import { ErrorCode, WeirError } from "../core/errors.ts";

export interface JobDefinition {
  readonly kind: "weir.job";
  readonly options: JobOptions;
  readonly build: (env: StreamEnvironment) => void;
  /** A fresh environment with the graph built, options overridden by `overrides` (CLI flags). */
  createEnvironment(overrides?: Partial<JobOptions>, hooks?: EnvironmentHooks): StreamEnvironment;
}

/** The graph is read as soon as build returns: what an async build adds after an await would be missed. */
const ASYNC_BUILD = "defineJob: the build function returned a promise; it must build the job graph synchronously (what it adds after an await would come after the job started)";

export function defineJob(options: JobOptions, build: (env: StreamEnvironment) => void): JobDefinition {
  if (typeof build !== "function") throw new WeirError(ErrorCode.InvalidJob, "defineJob: the second argument must be a function (env) => { ... }");
  if (build.constructor.name === "AsyncFunction") throw new WeirError(ErrorCode.InvalidJob, ASYNC_BUILD);
  // Checked now, so a job module with a bad option fails as it loads, naming the option.
  resolveJobOptions(options);
  return {
    kind: "weir.job",
    options,
    build,
    createEnvironment(overrides = {}, hooks = {}) {
      const merged: Record<string, unknown> = { ...options };
      for (const [k, v] of Object.entries(overrides)) if (v !== undefined) merged[k] = v;
      const env = StreamEnvironment.create(merged as JobOptions, hooks);
      const built: unknown = build(env);
      if (typeof (built as PromiseLike<unknown> | undefined)?.then === "function") {
        (built as Promise<unknown>).catch?.(() => {});
        throw new WeirError(ErrorCode.InvalidJob, ASYNC_BUILD);
      }
      return env;
    },
  };
}

export function isJobDefinition(x: unknown): x is JobDefinition {
  return typeof x === "object" && x !== null && (x as { kind?: unknown }).kind === "weir.job";
}
