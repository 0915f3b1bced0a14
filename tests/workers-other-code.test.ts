// Two workers of one job whose job files differ only in a function body (a rolling deploy of a new version
// of the job): both had the same job graph and options, so the leader placed subtasks on both and each
// counted its share of the keys by its own code. Now the leader gives the worker of the other version no
// subtasks and it ends with one line saying why; the job runs on, its output exact.
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

test.run();
