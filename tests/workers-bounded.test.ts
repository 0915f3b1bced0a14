// A bounded job on `weir run --workers 2` ends when its input ends. With parallelism 1 its one subtask
// may run on the worker that does not lead; a source that ends at once there reports it before the
// leader has read that worker's reply to "run", while the leader still deploys: the final checkpoint
// must still be taken then (it once waited for ever, and a graceful stop waited with it).
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { connect } from "@nats-io/transport-node";
import { withServer } from "./helpers/nats-server.ts";
import { readStream } from "./helpers/streams.ts";
import { runWeir } from "./helpers/cli.ts";

const test = suite("workers: a bounded job");
const nats = withServer(test);
const JOB = "tests/fixtures/jobs/bounded-chain.ts";

test("a bounded job of one vertex at parallelism 1 on two workers finishes: both workers exit 0, its output once", async () => {
  const nc = await connect({ servers: nats.url });
  try {
    // Several runs: which worker leads and which one gets the subtask differs from run to run.
    for (const run of [1, 2, 3, 4]) {
      const job = `bounded${run}`;
      const done = await runWeir(["run", JOB, "--nats", nats.url, "--workers", "2"], { env: { BOUNDED_JOB: job }, deadlineMs: 60_000 });
      assert.is(done.code, 0, `run ${run} ends by itself, exit 0: ${done.stderr.slice(-800)}`);
      assert.match(done.stdout, `${job} finished`);
      // Each worker prints a summary: the leader's counts the whole job, the other's its own share, and says so (it did not).
      const lines = done.stdout.split("\n").filter((l) => l.includes(`${job} finished after`));
      assert.is(lines.length, 2, done.stdout);
      const whole = lines.filter((l) => !l.includes("(this worker's share; the leader's line counts the whole job)"));
      assert.is(whole.length, 1, `one summary of the whole job: ${lines.join(" | ")}`);
      assert.match(whole[0]!, /: 5 records in \(.*\), 5 out, 0 dead letters$/);
      assert.equal((await readStream<number>(nc, `${job}_OUT`)).sort((a, b) => a - b), [2, 4, 6, 8, 10], `run ${run}: every record once`);
    }
  } finally {
    await nc.close();
  }
});

test.run();
