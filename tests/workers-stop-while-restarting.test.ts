// `weir run --workers 2` stopped (SIGTERM, as Ctrl-C) while a worker it started again after a crash is
// still starting: the other worker stops the job gracefully, so the run succeeds. Until 2026-12-06 the
// starting worker ended with "stopped by SIGTERM before it started" and the run exited 1.
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { connect } from "@nats-io/transport-node";
import { withServer } from "./helpers/nats-server.ts";
import { createStream } from "./helpers/streams.ts";
import { killWeir, startWeir, within } from "./helpers/cli.ts";
import { fetchStatus } from "../runtime/cli/commands/control.ts";

const test = suite("workers: a stop while a worker restarts");
const nats = withServer(test);

test("SIGTERM while a crashed worker starts again: exit 0", async () => {
  const nc = await connect({ servers: nats.url });
  await createStream(nc, "IN", ["in.*"]);
  const run = startWeir(["run", "tests/fixtures/jobs/worker-counts.ts", "--nats", nats.url, "--workers", "2", "--restore", "none"], { env: { WORKERS_BACKEND: "heap", WORKERS_PARALLELISM: "2" } });
  try {
    let follower: number | undefined;
    let epoch = 0;
    const deadline = Date.now() + 60_000;
    while (follower === undefined) {
      if (Date.now() > deadline) throw new Error(`two workers did not run the job: ${run.stderr().slice(-800)}`);
      const s = await fetchStatus(nc, "workers").catch(() => undefined);
      const ws = s?.state === "running" ? s.workers ?? [] : [];
      if (ws.length === 2 && ws.every((w) => w.subtasks.length > 0)) { follower = ws.find((w) => !w.leader)?.pid; epoch = s!.epoch ?? 0; }
      else await new Promise((r) => setTimeout(r, 100));
    }
    process.kill(follower, "SIGKILL");
    await run.waitForStderr("starting it again", 30_000);
    // The stop must come once the leader has failed over (a stop during the failover ends the run non-zero,
    // by design: README, "a stop while the job waits to restart"), and, to be this test, while the new worker
    // still loads or joins: the leader running the job alone in a later epoch. Loading takes the new worker
    // a second or more, failing over takes less.
    const failedOver = Date.now() + 30_000;
    for (;;) {
      const s = await fetchStatus(nc, "workers").catch(() => undefined);
      if (s?.state === "running" && (s.epoch ?? 0) > epoch) {
        if ((s.workers ?? []).length !== 1) process.stderr.write("the new worker had joined before the stop: the stop did not meet it starting\n");
        break;
      }
      if (Date.now() > failedOver) throw new Error(`the leader did not run the job again within 30 s: ${run.stderr().slice(-800)}`);
      await new Promise((r) => setTimeout(r, 50));
    }
    run.child.kill("SIGTERM");
    const exit = await within(run.exited, 60_000);
    assert.is(exit?.code, 0, run.stderr().slice(-1500));
  } finally {
    killWeir(run);
    await nc.close();
  }
});

test.run();
