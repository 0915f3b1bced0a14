// Loading a job module for `weir run`: one clear line for every way it can go wrong.

import { existsSync, readFileSync, statSync } from "node:fs";
import { resolve } from "node:path";
import { pathToFileURL } from "node:url";
import { isJobDefinition, type JobDefinition } from "../api/job.ts";
import { describeError, ErrorCode, WeirError } from "../core/errors.ts";

export async function loadJob(path: string): Promise<JobDefinition> {
  const file = resolve(path);
  if (!existsSync(file)) throw new WeirError(ErrorCode.InvalidJob, `job file not found: ${path}`);
  // Node's own refusal names weir's loader, not the user's path: say what is wrong instead.
  if (statSync(file).isDirectory()) throw new WeirError(ErrorCode.InvalidJob, `job file ${path} is a directory: give the job's .ts file`);
  let mod: { default?: unknown };
  try {
    mod = (await import(pathToFileURL(file).href)) as { default?: unknown };
  } catch (e) {
    const syntax = await syntaxError(file, path);
    if (syntax) throw new WeirError(ErrorCode.InvalidJob, `cannot load job file ${syntax}`, { cause: e });
    const first = ((e as Error).message ?? String(e)).split("\n")[0];
    throw new WeirError(ErrorCode.InvalidJob, `cannot load job file ${path}: ${first}`, { cause: e });
  }
  if (!isJobDefinition(mod.default)) {
    throw new WeirError(ErrorCode.InvalidJob, `job file ${path} must default-export defineJob(...) (found ${mod.default === undefined ? "no default export" : typeof mod.default})`);
  }
  return mod.default;
}

/**
 * The job's build function runs when its environment is created: an exception it throws is the job
 * file's fault, so the one line names the file (weir's own errors already name the option or operator).
 */
export function buildJob(job: JobDefinition, path: string, ...args: Parameters<JobDefinition["createEnvironment"]>): ReturnType<JobDefinition["createEnvironment"]> {
  try {
    return job.createEnvironment(...args);
  } catch (e) {
    if (e instanceof WeirError) throw e;
    throw new WeirError(ErrorCode.InvalidJob, `job file ${path}: its build function threw ${describeError(e)}`, { cause: e });
  }
}

/**
 * `<path>:<line>:<column>: syntax error: <reason>` when the file does not parse. tsx compiles with esbuild,
 * but what reaches us is its multi-line "Transform failed" message, or for a file that Node loads as
 * CommonJS, an unrelated require() error: so parse the file again with esbuild (tsx's own dependency)
 * and report its first error. Columns are 1-based, as editors count them.
 */
async function syntaxError(file: string, path: string): Promise<string | undefined> {
  let esbuild: typeof import("esbuild");
  try {
    esbuild = await import("esbuild");
  } catch {
    return undefined;
  }
  try {
    await esbuild.transform(readFileSync(file, "utf8"), { loader: /\.[cm]?tsx$/.test(file) ? "tsx" : /\.[cm]?ts$/.test(file) ? "ts" : "js", sourcefile: path, logLevel: "silent" });
    return undefined;
  } catch (e) {
    const first = (e as { errors?: Array<{ text: string; location?: { line: number; column: number } | null }> }).errors?.[0];
    if (!first) return undefined;
    const where = first.location ? `:${first.location.line}:${first.location.column + 1}` : "";
    return `${path}${where}: syntax error: ${first.text}`;
  }
}
