// `weir run` given a job file that cannot become a job: one line naming the file and a non-zero exit, as
// the README promises for "a bad job file". A directory used to surface Node's "Directory import ... from
// runtime/cli/load-job.ts" (weir's path, not the user's); a build function that throws used to print only
// "weir: Error: ...", naming no file.
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { withServer } from "./helpers/nats-server.ts";
import { runWeir } from "./helpers/cli.ts";

const test = suite("job file errors");
const nats = withServer(test);
let dir = "";

test.before(() => {
  dir = mkdtempSync(join(tmpdir(), "weir-job-file-errors-"));
  mkdirSync(join(dir, "jobs"));
  writeFileSync(join(dir, "throws.ts"), [
    `import { defineJob } from "weir";`,
    `export default defineJob({ name: "throws" }, () => { throw new Error("no input configured"); });`,
  ].join("\n"));
});
test.after(() => { rmSync(dir, { recursive: true, force: true }); });

function oneLine(stderr: string): string {
  const lines = stderr.trim().split("\n");
  assert.is(lines.length, 1, `one line expected: ${stderr}`);
  return lines[0]!;
}

test("a directory given as the job file is named as such", async () => {
  const r = await runWeir(["run", "jobs", "--nats", nats.url], { cwd: dir });
  assert.is(r.code, 1, r.stderr);
  assert.is(oneLine(r.stderr), "weir: job file jobs is a directory: give the job's .ts file");
});

test("a build function that throws is named with its file and message", async () => {
  const r = await runWeir(["run", "throws.ts", "--nats", nats.url], { cwd: dir });
  assert.is(r.code, 1, r.stderr);
  assert.is(oneLine(r.stderr), "weir: job file throws.ts: its build function threw Error: no input configured");
});

test.run();
