// `parallelism: "auto"` on two workers: the worker that joins (a follower) is deployed at the parallelism
// the leader chose for two workers. Its first line said "parallelism auto, 1 now" all the same (its own
// status reported the job's default, not the deployment's), while `weir status` said 2.
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { withServer } from "./helpers/nats-server.ts";
import { startWeir } from "./helpers/cli.ts";
import { runningOn, withInput } from "./helpers/worker-counts.ts";

const test = suite("workers: a follower of parallelism auto");
const nats = withServer(test);
const JOB = "tests/fixtures/jobs/worker-counts.ts";
const env = { WORKERS_PARALLELISM: "auto" };

test("the worker that joins names the parallelism it was deployed at", () => withInput(nats.url, 10, async ({ nc, procs }) => {
  procs.push(startWeir(["run", JOB, "--nats", nats.url], { env }));
  await runningOn(nc, procs, "the first worker runs the job");
  procs.push(startWeir(["run", JOB, "--nats", nats.url], { env }));
  const st = await runningOn(nc, procs, "the job runs on both workers");
  assert.is(st.parallelism, 2);
  const follower = procs[1]!;
  await follower.waitForStderr(/running workers \(parallelism auto, \d+ now/, 30_000);
  assert.match(follower.stderr(), "running workers (parallelism auto, 2 now");
}));

test.run();
