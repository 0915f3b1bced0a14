// Two workers of one job whose job files give an operator another parallelism of its own (the source's
// `{ parallelism }`). Both had the same job graph shape and options, so the leader placed subtasks on
// both: the second worker's keyed subtasks waited for barriers from a source channel the leader's graph
// does not have, and the job stalled with no word why. Now the leader gives that worker no subtasks and
// it ends with one line naming the operator; the job runs on, its output exact.
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { withServer } from "./helpers/nats-server.ts";
import { runWeir, startWeir } from "./helpers/cli.ts";
import { checkOutput, runningOn, withInput } from "./helpers/worker-counts.ts";

const test = suite("workers: an operator's own parallelism differs");
const nats = withServer(test);
const JOB = "tests/fixtures/jobs/worker-counts.ts";

test("a worker whose source runs at another parallelism gets no subtasks and ends with one line; output exact", () => withInput(nats.url, 20, async ({ nc, procs, stopInput }) => {
  procs.push(startWeir(["run", JOB, "--nats", nats.url], { env: { WORKERS_SOURCE_PARALLELISM: "2" } }));
  await runningOn(nc, procs, "the first worker runs the job");
  const other = await runWeir(["run", JOB, "--nats", nats.url], { env: { WORKERS_SOURCE_PARALLELISM: "3" }, deadlineMs: 60_000 });
  assert.is.not(other.code, 0, other.stderr);
  const lines = other.stderr.trim().split("\n").filter((l) => l.startsWith("weir: "));
  assert.is(lines.length, 1, other.stderr);
  assert.match(lines[0]!, `gives this worker no subtasks: it runs parallelism of "events" 3 (the leader's: 2)`);
  await runningOn(nc, procs, "the job still runs on the first worker alone");
  const total = await stopInput();
  await checkOutput(nc, total);
}));

test.run();
