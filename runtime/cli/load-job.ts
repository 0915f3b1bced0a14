// Loading a job module for `weir run`: one clear line for every way it can go wrong.

import { existsSync } from "node:fs";
import { resolve } from "node:path";
import { pathToFileURL } from "node:url";
import { isJobDefinition, type JobDefinition } from "../api/job.ts";
import { ErrorCode, WeirError } from "../errors.ts";

export async function loadJob(path: string): Promise<JobDefinition> {
  const file = resolve(path);
  if (!existsSync(file)) throw new WeirError(ErrorCode.InvalidJob, `job file not found: ${path}`);
  let mod: { default?: unknown };
  try {
    mod = (await import(pathToFileURL(file).href)) as { default?: unknown };
  } catch (e) {
    const first = ((e as Error).message ?? String(e)).split("\n")[0];
    throw new WeirError(ErrorCode.InvalidJob, `cannot load job file ${path}: ${first}`, { cause: e });
  }
  if (!isJobDefinition(mod.default)) {
    throw new WeirError(ErrorCode.InvalidJob, `job file ${path} must default-export defineJob(...) (found ${mod.default === undefined ? "no default export" : typeof mod.default})`);
  }
  return mod.default;
}
