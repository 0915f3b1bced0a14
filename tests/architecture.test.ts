// The layer rule of README.md ("How it runs"), checked on the imports of every source file under
// actors/, runtime/, state/ and scenarios/: no import cycle, no import from a lower layer to a higher
// one (state/ on runtime/core alone; runtime/core on nothing of weir), and no source file over 400 lines.
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { findCycles, importsOf, layerViolations, readImportGraph, type Edge, type Layer } from "./helpers/import-graph.ts";

const root = fileURLToPath(new URL("..", import.meta.url));
const FOLDERS = ["actors", "runtime", "state", "scenarios"] as const;
const MAX_LINES = 400;


/** Lowest first; a file may import from its own layer or a lower one (see README.md, "How it runs"). */
const LAYERS: ReadonlyArray<{ readonly layer: Layer; readonly paths: readonly string[] }> = [
  { layer: { level: 1, name: "core" }, paths: ["runtime/core/"] },
  { layer: { level: 2, name: "state" }, paths: ["state/"] },
  { layer: { level: 3, name: "contracts" }, paths: ["runtime/contracts/"] },
  {
    layer: { level: 4, name: "engine" },
    paths: ["runtime/transport/", "runtime/nats/", "runtime/graph/", "runtime/operators/", "runtime/keyed/",
      "runtime/sources/", "runtime/sinks/", "runtime/cache/", "runtime/checkpoint/", "runtime/cluster/"],
  },
  // One folder per actor (subtask, job, checkpoint): its machine and the classes performing its effects.
  { layer: { level: 5, name: "actors" }, paths: ["actors/"] },
  { layer: { level: 6, name: "api" }, paths: ["runtime/api/", "runtime/mod.ts", "runtime/internal.ts"] },
  { layer: { level: 7, name: "cli" }, paths: ["runtime/cli/"] },
  { layer: { level: 8, name: "scenarios" }, paths: ["scenarios/"] },
];

/** The most specific path wins (a file listed by name beats its folder). */
function layerOf(file: string): Layer | undefined {
  let best: { layer: Layer; length: number } | undefined;
  for (const { layer, paths } of LAYERS) {
    for (const p of paths) {
      const match = p.endsWith("/") ? file.startsWith(p) : file === p;
      if (match && (!best || p.length > best.length)) best = { layer, length: p.length };
    }
  }
  return best?.layer;
}

function mayImport(from: Layer, to: Layer, edge: Edge): boolean {
  if (from.name === "core") return to.name === "core";
  if (from.name === "state") return to.name === "state" || to.name === "core";
  // The CLI reaches the scenario runner (and the demo) only on demand, so runtime never loads them statically.
  if (edge.dynamic && from.name === "cli") return true;
  return to.level <= from.level;
}

const graph = readImportGraph(root, FOLDERS);

const arch = suite("architecture");

arch("the reader finds the imports of the source files", () => {
  assert.ok(graph.files.length > 100, `only ${graph.files.length} files`);
  assert.ok(graph.edges.some((e) => e.from === "runtime/mod.ts" && e.to === "runtime/api/environment.ts"));
  // Multi-line, type-only, re-exports, side effects and dynamic imports; commented-out ones are not imports.
  const sample = `import type {\n  A,\n  B,\n} from "./a.ts";\nexport * from './b.ts';\nimport "./c.ts";\n// import { x } from "./commented.ts";\n/* import "./block.ts" */\nconst s = "from './string.ts'";\nawait import("./d.ts");`;
  assert.equal(importsOf(sample), [
    { specifier: "./a.ts", dynamic: false },
    { specifier: "./b.ts", dynamic: false },
    { specifier: "./c.ts", dynamic: false },
    { specifier: "./d.ts", dynamic: true },
  ]);
});

arch("the checks catch a cycle and an upward import (on a made-up graph)", () => {
  const edges: Edge[] = [
    { from: "state/a.ts", to: "actors/job/x.ts", dynamic: false },
    { from: "actors/job/x.ts", to: "state/a.ts", dynamic: false },
    { from: "runtime/core/n.ts", to: "runtime/contracts/c.ts", dynamic: false },
  ];
  assert.equal(findCycles(edges), ["actors/job/x.ts → state/a.ts → actors/job/x.ts"]);
  assert.equal(layerViolations(["state/a.ts"], edges, layerOf, mayImport), [
    "state/a.ts (state) imports actors/job/x.ts (actors)",
    "runtime/core/n.ts (core) imports runtime/contracts/c.ts (contracts)",
  ]);
});

arch("no import cycle", () => {
  const cycles = findCycles(graph.edges);
  assert.equal(cycles, [], `import cycles:\n  ${cycles.join("\n  ")}`);
});

arch("imports point down the layers; state/ stands on runtime/core alone", () => {
  const problems = layerViolations(graph.files, graph.edges, layerOf, mayImport);
  assert.equal(problems, [], `imports against the layer rule:\n  ${problems.join("\n  ")}`);
});

arch(`no source file over ${MAX_LINES} lines`, () => {
  const long = graph.files
    .map((file) => ({ file, lines: readFileSync(`${root}/${file}`, "utf8").split("\n").length - 1 }))
    .filter(({ file, lines }) => lines > MAX_LINES)
    .map(({ file, lines }) => `${file}: ${lines} lines`);
  assert.equal(long, [], `files over ${MAX_LINES} lines:\n  ${long.join("\n  ")}`);
});

arch.run();
