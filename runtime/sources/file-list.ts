// Which files `Sources.file` reads: one file, every regular file of a directory (not its subdirectories),
// or the files matching a glob (`*` and `?` within a path segment, `**` across segments, `[abc]`).
// Names starting with "." are skipped (e.g. the in-progress part files of Sinks.file). Sorted, so every
// subtask computes the same list and takes its share: file k goes to subtask k % parallelism.

import { readdir, stat } from "node:fs/promises";
import { statSync } from "node:fs";
import { join, sep } from "node:path";

const WILDCARD = /[*?[]/;

export function isGlob(path: string): boolean { return WILDCARD.test(path); }

/** Whether `path` names several files (a glob or a directory), judged when the job is built. */
export function namesManyFiles(path: string): boolean {
  if (isGlob(path)) return true;
  try {
    return statSync(path).isDirectory();
  } catch {
    return false; // missing: createReader says so
  }
}

function globRegExp(pattern: string): RegExp {
  let re = "";
  for (let i = 0; i < pattern.length; i++) {
    const c = pattern[i]!;
    if (c === "*" && pattern[i + 1] === "*") {
      // "**/" matches zero or more directories; a trailing "**" anything below.
      if (pattern[i + 2] === "/") { re += "(?:[^/]+/)*"; i += 2; } else { re += ".*"; i += 1; }
    } else if (c === "*") re += "[^/]*";
    else if (c === "?") re += "[^/]";
    else if (c === "[") {
      const end = pattern.indexOf("]", i + 1);
      if (end < 0) { re += "\\["; continue; }
      re += `[${pattern.slice(i + 1, end).replace(/^!/, "^").replace(/\\/g, "\\\\")}]`;
      i = end;
    } else re += c.replace(/[.+^${}()|\\\]]/g, "\\$&");
  }
  return new RegExp(`^${re}$`);
}

async function walk(dir: string, rel: string, deep: boolean, out: string[]): Promise<void> {
  for (const e of await readdir(dir, { withFileTypes: true })) {
    if (e.name.startsWith(".")) continue;
    const r = rel ? `${rel}/${e.name}` : e.name;
    if (e.isDirectory()) { if (deep) await walk(join(dir, e.name), r, deep, out); }
    else if (e.isFile()) out.push(r);
  }
}

/** The files `path` names, sorted; throws (the caller words the error) when there are none. */
export async function listFiles(path: string): Promise<string[]> {
  if (!isGlob(path)) {
    const st = await stat(path);
    if (st.isFile()) return [path];
    if (!st.isDirectory()) throw new Error("not a regular file or directory");
    const files: string[] = [];
    await walk(path, "", false, files);
    if (files.length === 0) throw new Error("the directory holds no files");
    return files.sort().map((f) => join(path, f));
  }
  const segments = path.split(/[\\/]/);
  const first = segments.findIndex((s) => WILDCARD.test(s));
  const base = segments.slice(0, first).join(sep) || (path.startsWith("/") ? "/" : ".");
  const rest = segments.slice(first).join("/");
  const re = globRegExp(rest);
  const files: string[] = [];
  await walk(base, "", rest.includes("/") || rest.includes("**"), files);
  const matched = files.filter((f) => re.test(f)).sort();
  if (matched.length === 0) throw new Error("no files match");
  return matched.map((f) => join(base, f));
}
