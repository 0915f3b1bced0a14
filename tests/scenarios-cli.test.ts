// `weir scenario` as a user runs it: what --verbose prints, the result table, and scenario options as `weir run` takes them.
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { spawnSync } from "node:child_process";
import { chmodSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { runScenario } from "../scenarios/runner.ts";

const root = resolve(new URL("..", import.meta.url).pathname);
let dir: string;

function weirScenario(args: string[], cwd = root) {
  return spawnSync(process.execPath, [join(root, "bin/weir.mjs"), "scenario", ...args], { cwd, encoding: "utf8", timeout: 60_000 });
}

const cli = suite("weir scenario");
cli.before(() => { dir = mkdtempSync(join(tmpdir(), "weir-scn-cli-")); });
cli.after(() => { rmSync(dir, { recursive: true, force: true }); });

cli("--verbose prints a failed job's stderr once, as it arrives", () => {
  const file = join(dir, "fails.scenario.yaml");
  writeFileSync(file, `job: ${join(root, "tests/fixtures/jobs/build-fails.ts")}\nsteps:\n  - start: {}\n`);
  const run = weirScenario([file, "--verbose"]);
  assert.is(run.status, 1, run.stdout + run.stderr);
  // The table and the details end their line with more; the job's own stderr line ends here.
  const echoed = run.stdout.split("\n").filter((l) => l.endsWith("its build function threw Error: the pipeline cannot be built"));
  assert.equal(echoed.map((l) => l.trimStart().slice(0, 10)), ["[job] weir"], run.stdout);
});

cli("a file that does not load is named in the table by its path, its file name kept", () => {
  // Outside the cwd, in a deep folder: two names alike but for their ends.
  const base = join(dir, "paths");
  const deep = join(base, "some/deeply/nested/folder/of/scenarios");
  mkdirSync(deep, { recursive: true });
  const names = ["orders-dedup-across-restarts.scenario.yaml", "orders-dedup-across-restarts-with-savepoint.scenario.yaml"];
  for (const n of names) writeFileSync(join(deep, n), "job: j.ts\nsteps: soon\n");
  const run = weirScenario([base]);
  assert.is(run.status, 1, run.stdout + run.stderr);
  const rows = run.stdout.split("\n").filter((l) => /\s+FAIL\s+\d/.test(l)).map((l) => l.split(/\s+FAIL\s+/)[0]!);
  // Sorted: "-with-savepoint" before ".scenario".
  assert.equal(rows.map((r) => r.endsWith("-with-savepoint.scenario.yaml")), [true, false], run.stdout);
  assert.ok(rows[1]!.endsWith("/orders-dedup-across-restarts.scenario.yaml"), run.stdout);
  assert.ok(rows.every((r) => !r.startsWith("..")), run.stdout);
  // Below the table, each by its whole path as given.
  for (const n of names) assert.ok(run.stdout.split("\n").includes(`FAIL ${join(deep, n)}`), run.stdout);
});

cli("options.parallelism: auto, as weir run takes it: a second worker gets subtasks and comes up", async () => {
  const file = join(dir, "auto.scenario.yaml");
  writeFileSync(file, [
    `job: ${join(root, "examples/scenarios/wordcount.ts")}`,
    "options: { parallelism: auto, stateBackend: heap }",
    "streams: [{ name: WORDS, subjects: ['words.>'] }]",
    "steps:",
    "  - publish: { subject: words.left, data: 'a b' }",
    "  - start: {}",
    "  - start: { worker: b }",
    // With a fixed parallelism 1, worker b would get no subtasks and this wait would time out.
    "  - wait: { workers: 2 }",
    "  - wait: { output: { stream: COUNTS, count: 2 } }",
    "  - stop: {}",
  ].join("\n"));
  const r = await runScenario(file);
  assert.is(r.outcome, "passed", `${r.reason}\n${r.stderr}`);
});

cli("a symlink loop in a scenario folder is one line on stderr, and the scenarios beside it run, each once", () => {
  const base = join(dir, "loops");
  mkdirSync(join(base, "sub"), { recursive: true });
  writeFileSync(join(base, "ok.scenario.yaml"), `job: ${join(root, "examples/scenarios/wordcount.ts")}\nsteps: []\n`);
  symlinkSync("..", join(base, "sub/up")); // back to the folder: a walk that follows it never ends
  symlinkSync("self", join(base, "self")); // to itself: stat fails with ELOOP
  symlinkSync("looped.scenario.yaml", join(base, "looped.scenario.yaml"));
  // Not loops: a second way into one folder, and the file named again; each scenario runs once all the same.
  symlinkSync(base, join(dir, "loops-again"));
  const run = weirScenario([base, join(dir, "loops-again"), join(base, "ok.scenario.yaml")]);
  assert.equal(run.stderr.split("\n").filter(Boolean), [
    `weir: skipped ${join(base, "self")}: a symlink loop (too many levels of symbolic links)`,
    `weir: skipped ${join(base, "sub/up")}: a symlink loop (it leads back to ${base})`,
  ], run.stderr);
  // A scenario file that is a loop is not skipped silently: it fails in the table.
  assert.ok(run.stdout.includes(`FAIL ${join(base, "looped.scenario.yaml")}\n  a symlink loop (too many levels of symbolic links)\n`), run.stdout);
  assert.is(run.stdout.trim().split("\n").pop(), "2 scenarios: 1 passed, 1 failed", run.stdout);
});

cli("a path that goes through a file, as a folder would, is one line naming it (not node's ENOTDIR message)", () => {
  const file = join(dir, "plain.txt");
  writeFileSync(file, "not a folder");
  const run = weirScenario([join(file, "scenarios")]);
  assert.is(run.status, 1, run.stdout + run.stderr);
  assert.equal(run.stderr.trim().split("\n"), [`weir: ${join(file, "scenarios")}: not found: a part of its path is a file, not a folder`]);
});

cli("folders a user may not read: the one named is one line saying so; one inside it is skipped with a line", () => {
  // Root reads everything: as root, the command runs without the capabilities that let it (setpriv,
  // util-linux), still as root, so that it reads its own code wherever the clone is.
  const asUser = (args: string[]) => process.getuid?.() === 0
    ? spawnSync("setpriv", ["--bounding-set=-dac_override,-dac_read_search", process.execPath, join(root, "bin/weir.mjs"), "scenario", ...args], { cwd: root, encoding: "utf8", timeout: 60_000 })
    : weirScenario(args);
  const base = join(dir, "perms");
  mkdirSync(join(base, "inner/locked"), { recursive: true });
  chmodSync(join(base, "inner/locked"), 0o000);
  mkdirSync(join(base, "locked"));
  chmodSync(join(base, "locked"), 0o000);
  try {
    const top = asUser([join(base, "locked")]);
    assert.is(top.status, 1, top.stdout + top.stderr);
    assert.equal(top.stderr.trim().split("\n"), [`weir: ${join(base, "locked")}: permission denied`]);
    const below = asUser([join(base, "locked/a.scenario.yaml")]);
    assert.equal(below.stderr.trim().split("\n"), [`weir: ${join(base, "locked/a.scenario.yaml")}: permission denied`]);
    const inner = asUser([join(base, "inner")]);
    assert.equal(inner.stderr.trim().split("\n"), [`weir: skipped ${join(base, "inner/locked")}: permission denied`, `weir: no *.scenario.yaml files in ${join(base, "inner")}`]);
  } finally {
    chmodSync(join(base, "inner/locked"), 0o755);
    chmodSync(join(base, "locked"), 0o755);
  }
});

cli.run();
