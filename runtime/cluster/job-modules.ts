// The job's own modules: its job file and the local files it imports, each by a digest of its text. The
// workers of one job compare them (job-identity.ts), so that a worker whose helper module changed (a
// rolling deploy of a new version) is told apart, not only one whose operators' function bodies differ:
// those call helpers whose text the functions do not show.
//
// The files are what esbuild (tsx's own dependency, which compiles the job file anyway) finds by
// following the entry's imports: relative and tsconfig-mapped ones, not packages (their versions are the
// deployment's business) and not weir's own sources (a job file in this repository may import them by
// path). Imports made by computed `import()` calls are not seen.

import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import { dirname, relative, resolve, sep } from "node:path";
import { fileURLToPath } from "node:url";

/** Relative path (from the entry's folder, `/`-separated) → digest; the entry itself is `JOB_FILE`. */
export type JobModules = Record<string, string>;

/** The entry's name in JobModules: workers may run it from files of other names. */
export const JOB_FILE = "the job file";
/** Files beyond this many are one entry (`MORE_MODULES`): heartbeats carry the list. */
const MAX_NAMED = 40;
const MORE_MODULES = "other modules";

const WEIR_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "../..");
const WEIR_SOURCES = ["actors", "runtime", "state", "scenarios"].map((d) => resolve(WEIR_ROOT, d) + sep);

/** The job file first, then by path. */
const byName = (a: string, b: string): number => (a === b ? 0 : a === JOB_FILE ? -1 : b === JOB_FILE ? 1 : a < b ? -1 : 1);

const digest = (text: string | Buffer): string => createHash("sha256").update(text).digest("hex").slice(0, 12);

/**
 * The modules of the job whose entry is `entryFile`, or undefined when they cannot be listed (no entry, one
 * inside a package such as a test runner's, esbuild missing, the file not parsing: the job's loading says
 * why): then workers are compared without them.
 */
export async function jobModules(entryFile: string | undefined): Promise<JobModules | undefined> {
  if (entryFile === undefined) return undefined;
  const entry = resolve(entryFile);
  if (entry.split(sep).includes("node_modules")) return undefined;
  let esbuild: typeof import("esbuild");
  try {
    esbuild = await import("esbuild");
  } catch {
    return undefined;
  }
  const folder = dirname(entry);
  let inputs: string[];
  try {
    const built = await esbuild.build({
      entryPoints: [entry], absWorkingDir: folder, bundle: true, write: false, metafile: true,
      packages: "external", platform: "node", format: "esm", logLevel: "silent",
    });
    inputs = Object.keys(built.metafile.inputs);
  } catch {
    return undefined;
  }
  const files = inputs
    .map((p) => resolve(folder, p))
    .filter((f) => !f.split(sep).includes("node_modules") && !WEIR_SOURCES.some((d) => f.startsWith(d)));
  const named = files.map((f) => [f === entry ? JOB_FILE : relative(folder, f).split(sep).join("/"), digest(readFileSync(f))] as const)
    .sort(([a], [b]) => byName(a, b));
  const out: JobModules = Object.fromEntries(named.slice(0, MAX_NAMED));
  const rest = named.slice(MAX_NAMED);
  if (rest.length > 0) out[MORE_MODULES] = digest(rest.map(([n, d]) => `${n}:${d}`).join("\n"));
  return out;
}

/** The modules that differ between two workers, named for a one-line message (undefined: none). */
export function modulesDifference(mine: JobModules, theirs: JobModules): string | undefined {
  const names = [...new Set([...Object.keys(mine), ...Object.keys(theirs)])].sort(byName);
  const differ = names.filter((n) => mine[n] !== theirs[n]).map((n) =>
    mine[n] === undefined ? `${n} (the leader does not import it)` : theirs[n] === undefined ? `${n} (it does not import it)` : n);
  return differ.length > 0 ? differ.join(", ") : undefined;
}
