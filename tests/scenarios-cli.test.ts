// `weir scenario` as a user runs it: what --verbose prints and the result table, for files that fail.
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";

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

cli.run();
