// A spare worker (more workers than the job places subtasks on) joining or leaving moves no subtask: the
// job runs on in the same epoch, without the checkpoint and restart of a rebalance (as Flink keeps running
// when a standby TaskManager comes or goes). The spare still counts as started and reads ready as a spare.
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { withServer } from "./helpers/nats-server.ts";
import { startWeir, within, freePort, eventually } from "./helpers/cli.ts";
import { checkOutput, runningOn, status, withInput } from "./helpers/worker-counts.ts";

const test = suite("workers: a spare joins and leaves");
const nats = withServer(test);
const JOB = "tests/fixtures/jobs/worker-counts.ts";
// Parallelism 1: one worker runs every subtask, a second is a spare.
const env = { WORKERS_PARALLELISM: "1" };

test("a spare joining and leaving: the job runs on in the same epoch, no restart; the spare reads ready; output exact", () => withInput(nats.url, 20, async ({ nc, procs, stopInput }) => {
  procs.push(startWeir(["run", JOB, "--nats", nats.url], { env }));
  const before = await runningOn(nc, procs, "the first worker runs the job");
  const port = await freePort();
  const spare = startWeir(["run", JOB, "--nats", nats.url, "--http", `127.0.0.1:${port}`], { env });
  procs.push(spare);
  // Ready as a spare: what a rolling update waits for.
  const text = "ready: job workers is running on its other workers; this worker is a spare (the job places no subtasks on it)\n";
  await eventually("the spare reads ready, a spare", 60_000, async () => {
    const r = await fetch(`http://127.0.0.1:${port}/readyz`).catch(() => undefined);
    return r?.status === 200 && (await r.text()) === text ? true : undefined;
  });
  const joined = await status(nc);
  assert.is(joined?.state, "running");
  assert.is(joined?.epoch, before.epoch, "the same epoch: no redeployment");
  assert.is(joined?.restarts, before.restarts, "no restart");
  assert.equal(joined?.workers?.map((w) => w.subtasks.length).sort(), [0, before.workers![0]!.subtasks.length], "both listed, the spare without subtasks");
  assert.equal(joined?.rebalances, before.rebalances, "no rebalance");
  await procs[0]!.waitForStderr(/joined: no subtask moves .* runs on in epoch \d+ without a rebalance/, 30_000);

  spare.child.kill("SIGTERM");
  const end = await within(spare.exited, 60_000);
  assert.is(end?.code, 0, spare.stderr().slice(-600));
  await procs[0]!.waitForStderr(/left: no subtask moves .* runs on in epoch \d+ without a rebalance/, 30_000);
  const left = await runningOn(nc, [procs[0]!], "the job runs on the first worker alone");
  assert.is(left.epoch, before.epoch, "still the same epoch after the spare left");
  assert.is(left.restarts, before.restarts, "no restart");
  const total = await stopInput();
  await checkOutput(nc, total);
}));

test.run();
