// Two workers of one job whose job files differ only in a function body (a rolling deploy of a new version
// of the job): both had the same job graph and options, so the leader placed subtasks on both and each
// counted its share of the keys by its own code. Now the leader gives the worker of the other version no
// subtasks and it ends with one line saying why; the job runs on, its output exact. The same when only a
// module the job file imports differs: the line names it.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { withServer } from "./helpers/nats-server.ts";
import { runWeir, startWeir } from "./helpers/cli.ts";
import { checkOutput, runningOn, withInput } from "./helpers/worker-counts.ts";

const test = suite("workers: another version of a function");
const nats = withServer(test);
const JOB = "tests/fixtures/jobs/worker-counts.ts";

test("a worker whose process function differs gets no subtasks and ends with one line; output exact", () => withInput(nats.url, 20, async ({ nc, procs, stopInput }) => {
  procs.push(startWeir(["run", JOB, "--nats", nats.url]));
  await runningOn(nc, procs, "the first worker runs the job");
  const other = await runWeir(["run", JOB, "--nats", nats.url], { env: { WORKERS_OTHER_CODE: "1" }, deadlineMs: 60_000 });
  assert.is.not(other.code, 0, other.stderr);
  const lines = other.stderr.trim().split("\n").filter((l) => l.startsWith("weir: "));
  assert.is(lines.length, 1, other.stderr);
  assert.match(lines[0]!, "gives this worker no subtasks: it runs other code in its operators' functions or key selectors (another version of the job file?)");
  await runningOn(nc, procs, "the job still runs on the first worker alone");
  const total = await stopInput();
  await checkOutput(nc, total);
}));

/** The workers' job in a folder of its own, its count's step taken from ./step.ts (a helper module). */
function jobWithHelper(step: number): string {
  const dir = mkdtempSync(join(tmpdir(), "weir-other-module-"));
  const text = readFileSync(JOB, "utf8").replace("countBy(1, e, ctx)", "countBy(STEP, e, ctx)");
  assert.ok(text.includes("countBy(STEP, e, ctx)"), "the fixture still counts by countBy(1, e, ctx)");
  writeFileSync(join(dir, "job.ts"), `import { STEP } from "./step.ts";\n${text}`);
  writeFileSync(join(dir, "step.ts"), `export const STEP: number = ${step};\n`);
  return dir;
}

test("a worker whose helper module differs gets no subtasks and its one line names the module; output exact", async () => {
  const dirs = [jobWithHelper(1), jobWithHelper(2)];
  try {
    await withInput(nats.url, 20, async ({ nc, procs, stopInput }) => {
      procs.push(startWeir(["run", join(dirs[0]!, "job.ts"), "--nats", nats.url]));
      await runningOn(nc, procs, "the first worker runs the job");
      const other = await runWeir(["run", join(dirs[1]!, "job.ts"), "--nats", nats.url], { deadlineMs: 60_000 });
      assert.is.not(other.code, 0, other.stderr);
      const lines = other.stderr.trim().split("\n").filter((l) => l.startsWith("weir: "));
      assert.is(lines.length, 1, other.stderr);
      assert.match(lines[0]!, "gives this worker no subtasks: it runs other code in step.ts (another version of the job?)");
      await runningOn(nc, procs, "the job still runs on the first worker alone");
      const total = await stopInput();
      await checkOutput(nc, total);
    });
  } finally {
    for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
  }
});

test.run();
