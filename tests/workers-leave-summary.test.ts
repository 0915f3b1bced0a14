// One worker of two leaving on SIGTERM: the job goes on on the other, but the leaving worker's last line
// said "weir: <job> stopped after ...", as if the whole job had stopped. It now says the worker left.
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { withServer } from "./helpers/nats-server.ts";
import { startWeir, within } from "./helpers/cli.ts";
import { runningOn, withInput } from "./helpers/worker-counts.ts";

const test = suite("workers: the summary of a worker that leaves");
const nats = withServer(test);
const JOB = "tests/fixtures/jobs/worker-counts.ts";

test("a follower leaving on SIGTERM says it left and the job goes on; exit 0", () => withInput(nats.url, 10, async ({ nc, procs }) => {
  procs.push(startWeir(["run", JOB, "--nats", nats.url]));
  await runningOn(nc, procs, "the first worker runs the job");
  procs.push(startWeir(["run", JOB, "--nats", nats.url]));
  await runningOn(nc, procs, "the job runs on both workers");
  const follower = procs[1]!;
  follower.child.kill("SIGTERM");
  const end = await within(follower.exited, 30_000);
  assert.ok(end, "the follower leaves within 30 s");
  assert.is(end.code, 0, `exit ${end.code} (null: killed by a signal)\n${end.stdout.slice(-800)}\n${end.stderr.slice(-800)}`);
  assert.match(end.stdout, "weir: workers: this worker left the job (it goes on on its other workers) after");
  assert.not.match(end.stdout, "workers stopped");
  await runningOn(nc, [procs[0]!], "the job goes on on the first worker");
}));

test.run();
