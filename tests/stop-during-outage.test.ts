// Ctrl-C of `weir run` while its NATS server is down: the job goes on through the disconnect and stops
// once NATS is back (its final checkpoint needs NATS), saying so instead of seeming to ignore the stop; or,
// failing over (its NATS sink's flush failed), it stops at once without a final checkpoint, non-zero.
import { test } from "uvu";
import * as assert from "uvu/assert";
import { RestartableServer } from "./helpers/nats-server.ts";
import { startWeir, within } from "./helpers/cli.ts";

test("a stop asked during an outage says it waits for the job to run again, then stops it gracefully", async () => {
  const server = await RestartableServer.start();
  const run = startWeir(["run", "tests/fixtures/jobs/fail-once.ts", "--nats", server.url], { env: { FAIL_AT: "-1", JOB_NAME: "outage" } });
  try {
    await run.waitForStderr("running outage", 60_000);
    await run.waitForStderr(/checkpoints [1-9]/, 60_000);
    await server.kill();
    await run.waitForStderr(/NATS connection to \S+ lost/, 60_000);
    run.child.kill("SIGTERM");
    // Failing over (nothing runs) it stops at once, without a final checkpoint; else it says what it waits for.
    const stoppedFailing = /was stopped while failing over/;
    await run.waitForStderr(new RegExp(`outage is restarting: it stops once it runs again|outage is (stopping|running|failing): NATS is disconnected, it stops once NATS is back|${stoppedFailing.source}`), 60_000);
    await server.restart();
    const exit = await within(run.exited, 90_000);
    assert.ok(exit !== undefined, `weir run did not end after the server came back: ${run.stderr().slice(-800)}`);
    if (stoppedFailing.test(run.stderr())) {
      assert.is(exit!.code, 1, run.stderr().slice(-800));
      assert.match(run.stderr().trimEnd().split("\n").at(-1)!, /^weir: job outage was stopped while failing over, without a final checkpoint/);
    } else {
      assert.is(exit!.code, 0, run.stderr().slice(-800));
      assert.match(run.stderr(), /outage (stopped|finished)/);
    }
  } finally {
    if (run.child.exitCode === null) run.child.kill("SIGKILL");
    await server.stop();
  }
});

test.run();
