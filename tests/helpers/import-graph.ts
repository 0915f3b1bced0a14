// Reads the relative imports of weir's source files and checks them against the layer rule written in
// README.md ("How it runs"): no import cycle, no import from a lower layer to a higher one, and state/
// standing on runtime/core alone. Plain text parsing (comments and strings skipped), no compiler needed.

import { readdirSync, readFileSync, statSync } from "node:fs";
import { join, posix, relative } from "node:path";

export interface Edge {
  readonly from: string;
  readonly to: string;
  /** `import("...")`: loaded on demand, so it makes no load-order cycle. */
  readonly dynamic: boolean;
}

/** The code of a TypeScript file without comments; string contents kept (import specifiers live there). */
function stripComments(text: string): string {
  let out = "";
  let i = 0;
  while (i < text.length) {
    const c = text[i]!;
    const next = text[i + 1];
    if (c === "/" && next === "/") {
      while (i < text.length && text[i] !== "\n") i++;
    } else if (c === "/" && next === "*") {
      const end = text.indexOf("*/", i + 2);
      i = end < 0 ? text.length : end + 2;
    } else if (c === "\"" || c === "'" || c === "`") {
      let j = i + 1;
      while (j < text.length && text[j] !== c) j += text[j] === "\\" ? 2 : 1;
      out += text.slice(i, j + 1);
      i = j + 1;
    } else {
      out += c;
      i++;
    }
  }
  return out;
}

/** The module specifiers one file imports or re-exports, static and dynamic (literal ones only). */
export function importsOf(text: string): Array<{ specifier: string; dynamic: boolean }> {
  const code = stripComments(text);
  const found: Array<{ specifier: string; dynamic: boolean }> = [];
  const statik = /(?:^|[;\n}])\s*(?:import|export)\b[^;"'`]*?\bfrom\s*(["'])([^"']+)\1|(?:^|[;\n])\s*import\s*(["'])([^"']+)\3/g;
  for (const m of code.matchAll(statik)) found.push({ specifier: (m[2] ?? m[4])!, dynamic: false });
  for (const m of code.matchAll(/\bimport\s*\(\s*(["'])([^"']+)\1\s*\)/g)) found.push({ specifier: m[2]!, dynamic: true });
  return found;
}

function tsFiles(root: string, dir: string): string[] {
  const abs = join(root, dir);
  return readdirSync(abs).sort().flatMap((name) => {
    const path = join(dir, name);
    if (statSync(join(root, path)).isDirectory()) return tsFiles(root, path);
    return name.endsWith(".ts") ? [path.split("\\").join("/")] : [];
  });
}

/** Every `.ts` file under `folders` (paths relative to `root`, with `/`), and its relative imports. */
export function readImportGraph(root: string, folders: readonly string[]): { files: string[]; edges: Edge[] } {
  const files = folders.flatMap((f) => tsFiles(root, f));
  const edges: Edge[] = [];
  for (const file of files) {
    for (const { specifier, dynamic } of importsOf(readFileSync(join(root, file), "utf8"))) {
      if (!specifier.startsWith(".")) continue; // packages, node: builtins
      const to = posix.normalize(posix.join(posix.dirname(file), specifier));
      edges.push({ from: file, to: relative(root, join(root, to)).split("\\").join("/"), dynamic });
    }
  }
  return { files, edges };
}

/** Every import cycle among static imports, each as `a → b → … → a` (one per strongly connected part). */
export function findCycles(edges: readonly Edge[]): string[] {
  const out = new Map<string, string[]>();
  for (const e of edges) {
    if (e.dynamic) continue;
    const list = out.get(e.from) ?? [];
    list.push(e.to);
    out.set(e.from, list);
  }
  // Tarjan's strongly connected components; each part with more than one file (or a self-import) holds
  // a cycle, reported as one concrete path through it.
  let index = 0;
  const idx = new Map<string, number>();
  const low = new Map<string, number>();
  const stack: string[] = [];
  const onStack = new Set<string>();
  const cycles: string[] = [];
  const visit = (v: string): void => {
    idx.set(v, index);
    low.set(v, index);
    index++;
    stack.push(v);
    onStack.add(v);
    for (const w of out.get(v) ?? []) {
      if (!idx.has(w)) {
        visit(w);
        low.set(v, Math.min(low.get(v)!, low.get(w)!));
      } else if (onStack.has(w)) {
        low.set(v, Math.min(low.get(v)!, idx.get(w)!));
      }
    }
    if (low.get(v) !== idx.get(v)) return;
    const part: string[] = [];
    for (;;) {
      const w = stack.pop()!;
      onStack.delete(w);
      part.push(w);
      if (w === v) break;
    }
    const members = new Set(part);
    if (part.length > 1 || (out.get(v) ?? []).includes(v)) cycles.push(cyclePath(v, members, out));
  };
  for (const v of [...out.keys()].sort()) if (!idx.has(v)) visit(v);
  return cycles;
}

/** A shortest path from `start` back to itself inside one strongly connected part. */
function cyclePath(start: string, members: ReadonlySet<string>, out: ReadonlyMap<string, string[]>): string {
  const previous = new Map<string, string>();
  const queue = [start];
  while (queue.length > 0) {
    const v = queue.shift()!;
    for (const w of out.get(v) ?? []) {
      if (!members.has(w)) continue;
      if (w === start) {
        const path = [start];
        for (let x: string | undefined = v; x !== undefined && x !== start; x = previous.get(x)) path.unshift(x);
        path.unshift(start);
        return path.join(" → ");
      }
      if (!previous.has(w)) {
        previous.set(w, v);
        queue.push(w);
      }
    }
  }
  return start;
}

export interface Layer {
  readonly level: number;
  readonly name: string;
}

/**
 * Every import that breaks the rule: `layerOf` places a file (undefined: a file no layer claims, itself
 * reported), `mayImport` says whether an import between two placed files is allowed.
 */
export function layerViolations(
  files: readonly string[],
  edges: readonly Edge[],
  layerOf: (file: string) => Layer | undefined,
  mayImport: (from: Layer, to: Layer, edge: Edge) => boolean,
): string[] {
  const problems: string[] = [];
  for (const f of files) if (!layerOf(f)) problems.push(`${f}: in no layer (place its folder in the layer rule)`);
  for (const e of edges) {
    const from = layerOf(e.from);
    const to = layerOf(e.to);
    if (!from) continue;
    if (!to) {
      if (!e.dynamic) problems.push(`${e.from} imports ${e.to}, outside the layered folders`);
      continue;
    }
    if (!mayImport(from, to, e)) {
      problems.push(`${e.from} (${from.name}) imports ${e.to} (${to.name})${e.dynamic ? " dynamically" : ""}`);
    }
  }
  return problems;
}
