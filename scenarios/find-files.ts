// Which scenario files `weir scenario` runs (folders searched recursively, symlink loops skipped with a
// note) and how messages name a file.

import { existsSync, lstatSync, readdirSync, realpathSync, statSync, type Stats } from "node:fs";
import { isAbsolute, join, relative } from "node:path";
import { ErrorCode, WeirError } from "../runtime/core/errors.ts";
import { unreadable } from "./format.ts";

/**
 * Scenario files in `paths` (files, or folders searched recursively for *.scenario.yaml / .yml), sorted;
 * a folder without any is an error. A symlink loop met in a folder is passed to `onSkip` (one line) and
 * the search goes on with the others, as `find -L` does; a scenario file that cannot be read is kept, to
 * fail in the table.
 */
export function findScenarioFiles(paths: readonly string[], onSkip: (note: string) => void = () => {}): string[] {
  const out: string[] = [];
  // Each file and folder once, by its real path: two links to one folder (or a file also named on its
  // own) would run its scenarios twice.
  const seen = new Set<string>();
  const add = (file: string) => {
    let real = file;
    try { real = realpathSync(file); } catch { /* kept: it fails in the table, saying why */ }
    if (seen.has(real)) return;
    seen.add(real);
    out.push(file);
  };
  // `ancestors`: the real paths of the folders being walked; a link back to one of them never ends.
  const walk = (dir: string, ancestors: readonly string[]) => {
    let names: string[];
    try {
      names = readdirSync(dir).sort();
    } catch (e) {
      // A folder inside that cannot be listed is skipped, as `find` goes on past it; the one named is an error.
      if (ancestors.length === 1) throw e;
      onSkip(`skipped ${shownPath(dir)}: ${unreadable(e)}`);
      return;
    }
    for (const name of names) {
      if (name === "node_modules" || name.startsWith(".")) continue;
      const p = join(dir, name);
      const isScenario = /\.scenario\.ya?ml$/.test(name);
      let st: Stats;
      try {
        st = statSync(p);
      } catch (e) {
        if (isScenario) add(p);
        else onSkip(`skipped ${shownPath(p)}: ${unreadable(e)}`);
        continue;
      }
      if (st.isDirectory()) {
        const real = realpathSync(p);
        if (ancestors.includes(real)) onSkip(`skipped ${shownPath(p)}: a symlink loop (it leads back to ${shownPath(real)})`);
        else if (!seen.has(real)) {
          seen.add(real);
          walk(p, [...ancestors, real]);
        }
      } else if (isScenario) add(p);
    }
  };
  for (const p of paths) {
    let found: number;
    try {
      found = addPath(p);
    } catch (e) {
      // One line naming the path (permission denied, a file where a folder was expected), not node's message.
      if (e instanceof WeirError) throw e;
      throw new WeirError(ErrorCode.Scenario, `${p}: ${unreadable(e)}`, { cause: e });
    }
    // Beside other paths, a folder that holds none would pass unnoticed (files named *.yaml are not found).
    if (found === 0) throw new WeirError(ErrorCode.Scenario, `no *.scenario.yaml files in ${p}`);
  }
  return out;

  /** How many scenario files `p` adds; a file, or a folder already searched, counts as one (neither is "empty"). */
  function addPath(p: string): number {
    if (!existsSync(p)) {
      // existsSync is false for a symlink loop too: "no such file" would send the user looking for a typo.
      if (!lstatSync(p, { throwIfNoEntry: false })) throw new WeirError(ErrorCode.Scenario, `no such file or folder: ${p}`);
      statSync(p); // throws why it cannot be followed
    }
    if (!statSync(p).isDirectory()) { add(p); return 1; }
    const before = out.length;
    const real = realpathSync(p);
    if (seen.has(real)) return 1;
    seen.add(real);
    walk(p, [real]);
    return out.length - before;
  }
}

/**
 * A scenario file as messages name it: relative to the cwd when inside it, else as given (a path that
 * starts ../../../tmp is one the user never typed).
 */
export function shownPath(file: string): string {
  const rel = relative(process.cwd(), file);
  return rel && !rel.startsWith("..") && !isAbsolute(rel) ? rel : file;
}
