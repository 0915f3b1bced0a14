// A worker that joins its run after the job ended (`weir run --workers 2` of a bounded job that the
// first worker finished alone before the second one connected) ends with the job: the leader records the
// end in the job log, and a worker whose run began before that end reads it and exits with the job's
// result, never running the job a second time. A `weir run` started after the end is a new run.
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { connect } from "@nats-io/transport-node";
import { withServer } from "./helpers/nats-server.ts";
import { readStream } from "./helpers/streams.ts";
import { runWeir } from "./helpers/cli.ts";
import { JobLog } from "../runtime/cluster/job-log.ts";
import { JobNames } from "../runtime/core/names.ts";

const test = suite("workers: joining a run that ended");
const nats = withServer(test);
const JOB = "tests/fixtures/jobs/secured-counts.ts";

const outputs = async (job: string): Promise<string[]> => {
  const nc = await connect({ servers: nats.url });
  try {
    return (await readStream<{ word: string; n: number }>(nc, `${job}_OUT`)).map((o) => `${o.word}${o.n}`).sort();
  } finally {
    await nc.close();
  }
};

test("a worker of a run whose job already finished exits 0 with it; the output is written once", async () => {
  const runStarted = Date.now();
  const first = await runWeir(["run", JOB, "--nats", nats.url], { env: { SECURED_JOB: "late" } });
  assert.is(first.code, 0, first.stderr.slice(-800));
  assert.equal(await outputs("late"), ["a1", "a2", "a3", "b1", "c1"]);
  // The second worker of the same run (its supervisor started before the job ended) connects only now.
  const late = await runWeir(["run", JOB, "--nats", nats.url], { env: { SECURED_JOB: "late", WEIR_RUN_STARTED_AT: String(runStarted) } });
  assert.is(late.code, 0, late.stderr.slice(-800));
  assert.match(late.stderr, "job late ended (finished) before this worker joined it");
  assert.equal(await outputs("late"), ["a1", "a2", "a3", "b1", "c1"], "the job did not run a second time");
  // A run started after that end is a run of its own: it runs the job.
  const again = await runWeir(["run", JOB, "--nats", nats.url], { env: { SECURED_JOB: "late" } });
  assert.is(again.code, 0, again.stderr.slice(-800));
  assert.not.match(again.stderr, "before this worker joined");
  assert.match(again.stdout, "late finished");
});

test("a run after one that died right after recording its end (its lease never released) runs the job", async () => {
  const first = await runWeir(["run", JOB, "--nats", nats.url], { env: { SECURED_JOB: "diedatend" } });
  assert.is(first.code, 0, first.stderr.slice(-800));
  // What a leader killed between its end record and its lease release leaves: the end is the log's last record.
  const nc = await connect({ servers: nats.url });
  try {
    const log = await JobLog.open(nc, new JobNames("diedatend"));
    const dead = "gone-worker";
    const leased = await log.append({ kind: "lease", leader: dead, epoch: 7 }, await log.lastSeq());
    assert.type(leased, "number");
    assert.type(await log.append({ kind: "end", leader: dead, epoch: 7, state: "failed", failure: "boom" }, leased as number), "number");
  } finally {
    await nc.close();
  }
  const again = await runWeir(["run", JOB, "--nats", nats.url], { env: { SECURED_JOB: "diedatend" } });
  assert.is(again.code, 0, again.stderr.slice(-800));
  assert.match(again.stdout, "diedatend finished");
});

test.run();
