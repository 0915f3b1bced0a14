// The dead letters of a job on `weir run --workers 2` are counted wherever its subtask runs: a source
// subtask on the worker that does not lead publishes them with that worker's publisher, and the job's
// status (its summary line, `weir status`, the dashboard) once counted only the leader's own.
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { connect } from "@nats-io/transport-node";
import { withServer } from "./helpers/nats-server.ts";
import { createStream, publishAll } from "./helpers/streams.ts";
import { runWeir } from "./helpers/cli.ts";

const test = suite("workers: dead letters");
const nats = withServer(test);
const JOB = "tests/fixtures/jobs/bounded-dlq.ts";

test("a bounded job on two workers with 3 malformed records of 8: its status counts 3 dead letters, whichever worker ran the source", async () => {
  const nc = await connect({ servers: nats.url });
  try {
    // Several runs: which worker leads and which one gets the subtask differs from run to run.
    for (const run of [1, 2, 3, 4]) {
      const job = `wdlq${run}`;
      await createStream(nc, `${job}_IN`, [`${job}.in`]);
      await publishAll(nc, ["1", "2", "oops", "3", "{", "4", "five", "6"].map((v) => [`${job}.in`, v] as [string, string]));
      const done = await runWeir(["run", JOB, "--nats", nats.url, "--workers", "2"], { env: { DLQ_JOB: job }, deadlineMs: 60_000 });
      assert.is(done.code, 0, `run ${run} ends by itself, exit 0: ${done.stderr.slice(-800)}`);
      // The job's last status, as its leader kept it (each worker's own summary line counts its own subtasks).
      const status = await runWeir(["status", job, "--json", "--nats", nats.url], { deadlineMs: 30_000 });
      const last = (JSON.parse(status.stdout) as { last?: { deadLetters?: number; recordsIn?: number } }).last;
      assert.is(last?.deadLetters, 3, `run ${run}: ${status.stdout}`);
      assert.is(last?.recordsIn, 5, `run ${run}: the 5 numbers in (${status.stdout})`);
    }
  } finally {
    await nc.close();
  }
});

test("weir run's summary counts in the singular and the plural: 1 record in, 1 dead letter", async () => {
  const nc = await connect({ servers: nats.url });
  try {
    const job = "onedlq";
    await createStream(nc, `${job}_IN`, [`${job}.in`]);
    await publishAll(nc, ["1", "oops"].map((v) => [`${job}.in`, v] as [string, string]));
    const done = await runWeir(["run", JOB, "--nats", nats.url], { env: { DLQ_JOB: job }, deadlineMs: 60_000 });
    assert.is(done.code, 0, done.stderr.slice(-800));
    assert.match(done.stdout, /^weir: onedlq finished after [\d.]+s: 1 record in \([^)]*\), 1 out, 1 dead letter$/m);
  } finally {
    await nc.close();
  }
});

test.run();
