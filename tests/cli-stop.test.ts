// `weir stop <job>` through the CLI against a real `weir run` process: exit 0 only when the job confirmed
// it stopped; a job that fails while (or instead of) stopping is a non-zero exit with its reason.
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { connect } from "@nats-io/transport-node";
import { withServer } from "./helpers/nats-server.ts";
import { createStream, publishAll } from "./helpers/streams.ts";
import { eventually, runWeir, startWeir, within } from "./helpers/cli.ts";
import { fetchStatus } from "../runtime/cli/commands/control.ts";

const test = suite("weir stop");
const nats = withServer(test);
const JOB = "tests/fixtures/jobs/failing-sink.ts";

test("a running job: weir stop exits 0 once the job stopped, and weir run ends with 0", async () => {
  const nc = await connect({ servers: nats.url });
  await createStream(nc, "STOPPER_IN", ["stopper.in"]);
  await publishAll(nc, [["stopper.in", "a"], ["stopper.in", "b"]]);
  const run = startWeir(["run", JOB, "--nats", nats.url], { env: { SINKJOB_NAME: "stopper", SINKJOB_SUBJECT: "stopout.x" } });
  try {
    await run.waitForStderr("weir: running stopper", 60_000);
    const stop = await runWeir(["stop", "stopper", "--nats", nats.url]);
    assert.is(stop.code, 0, `weir stop: ${stop.stderr}`);
    assert.is(stop.stdout.trim(), "stopper: stopped");
    const exit = await within(run.exited, 60_000);
    assert.is(exit?.code, 0, `weir run ended with 0: ${run.stderr().slice(-600)}`);
  } finally {
    if (run.child.exitCode === null) run.child.kill("SIGKILL");
    await nc.close();
  }
});

test("a job that listens but does not answer (its process frozen): weir stop says so after --timeout, not that it is not running", async () => {
  const nc = await connect({ servers: nats.url });
  await createStream(nc, "FROZEN_IN", ["frozen.in"]);
  await publishAll(nc, [["frozen.in", "a"]]);
  const run = startWeir(["run", JOB, "--nats", nats.url], { env: { SINKJOB_NAME: "frozen", SINKJOB_SUBJECT: "frozenout.x" } });
  try {
    await run.waitForStderr("weir: running frozen", 60_000);
    run.child.kill("SIGSTOP");
    const stop = await runWeir(["stop", "frozen", "--nats", nats.url, "--timeout", "5"], { deadlineMs: 60_000 });
    assert.is.not(stop.code, 0);
    assert.match(stop.stderr, /job frozen did not answer the stop request within 5s: it listens but does not reply/, stop.stderr);
    assert.not.match(stop.stderr, /is not running/);
  } finally {
    run.child.kill("SIGCONT");
    if (run.child.exitCode === null) run.child.kill("SIGKILL");
    await nc.close();
  }
});

test("a job failing and restarting: weir stop ends it at once, without a final checkpoint; it does not say stopped, it reports the failure, non-zero", async () => {
  const nc = await connect({ servers: nats.url });
  // Restarts 12 s apart: weir stop below (a process of its own, slow to start on a loaded machine) reaches the job while it is between restarts.
  const run = startWeir(["run", JOB, "--nats", nats.url, "--quiet"], { env: { SINKJOB_RESTART_DELAY_MS: "12000" } });
  try {
    await createStream(nc, "OTHER", ["taken.>"]);
    await createStream(nc, "FAILSINK_IN", ["failsink.in"]);
    await publishAll(nc, [["failsink.in", "a"]]);
    await eventually("the job failing", 60_000, async () => {
      if (run.child.exitCode !== null) throw new Error(`weir run ended first: ${run.stderr()}`);
      const s = await fetchStatus(nc, "failsink");
      return s && s.failures.length > 0 ? true : undefined;
    });
    const stop = await runWeir(["stop", "failsink", "--nats", nats.url]);
    assert.is.not(stop.code, 0, `weir stop must not succeed: ${stop.stdout}${stop.stderr}`);
    assert.not.match(stop.stdout, /stopped/);
    const last = stop.stderr.trimEnd().split("\n").at(-1)!;
    // Stopped in the 12 s between restarts, or (weir stop slower than that) failed again after the restart.
    assert.match(last, /^weir: job failsink (was stopped while failing over, without a final checkpoint .*; it had failed|failed instead of stopping): sink "out" .*FAILSINK_OUT/, last);
    const exit = await within(run.exited, 60_000);
    assert.ok(exit && exit.code !== 0, "the job itself failed");
  } finally {
    if (run.child.exitCode === null) run.child.kill("SIGKILL");
    await nc.close();
  }
});

test("SIGINT while the job waits to restart: weir run stops it at once and ends non-zero with the failure in one line, not a crash", async () => {
  const nc = await connect({ servers: nats.url });
  // Adding the same stream again is fine (the previous test may have made it).
  await createStream(nc, "OTHER", ["taken.>"]);
  await createStream(nc, "SIGFAIL_IN", ["sigfail.in"]);
  await publishAll(nc, [["sigfail.in", "a"]]);
  // Restarts 10 minutes apart: the run below ends by the stop, or not before its deadline.
  const run = startWeir(["run", JOB, "--nats", nats.url, "--quiet"], { env: { SINKJOB_NAME: "sigfail", SINKJOB_RESTART_DELAY_MS: "600000" } });
  try {
    await eventually("the job waiting to restart", 60_000, async () => {
      if (run.child.exitCode !== null) throw new Error(`weir run ended first: ${run.stderr()}`);
      const s = await fetchStatus(nc, "sigfail");
      return s?.state === "failing" && s.nextRestartAt !== undefined ? true : undefined;
    });
    run.child.kill("SIGINT");
    const exit = await within(run.exited, 60_000);
    assert.ok(exit, "weir run ended without waiting out the restart delay");
    assert.is(exit.code, 1, exit.stderr.slice(-800));
    assert.not.match(exit.stderr, /triggerUncaughtException|Node\.js v/, "no crash with a stack trace");
    assert.match(exit.stderr.trimEnd().split("\n").at(-1)!, /^weir: job sigfail was stopped while failing over, without a final checkpoint .*it had failed: sink "out"/);
    assert.not.match(exit.stderr, /restarting \(restart 1/, "not restarted after the stop");
  } finally {
    if (run.child.exitCode === null) run.child.kill("SIGKILL");
    await nc.close();
  }
});

test("a job between restarts: weir stop --savepoint waits until it runs again, stops it with a savepoint, exits 0", async () => {
  const nc = await connect({ servers: nats.url });
  await createStream(nc, "RECOVERS_IN", ["recovers.in"]);
  await publishAll(nc, [["recovers.in", "a"]]);
  const run = startWeir(["run", JOB, "--nats", nats.url], { env: { SINKJOB_NAME: "recovers", SINKJOB_SUBJECT: "recout.x", SINKJOB_RESTART_DELAY_MS: "12000" } });
  try {
    await run.waitForStderr("weir: running recovers", 60_000);
    const killed = await nc.request("weir.recovers.ctl.fail-subtask", JSON.stringify({ subtask: "in#0" }), { timeout: 10_000 });
    assert.equal(killed.json(), { ok: true });
    const stop = await runWeir(["stop", "recovers", "--savepoint", "--nats", nats.url]);
    assert.is(stop.code, 0, `weir stop: ${stop.stdout}${stop.stderr}`);
    assert.match(stop.stdout.trim(), /^recovers: stopped with savepoint \d+ \(weir run resumes from it\)$/);
    assert.match(stop.stderr, /recovers is (failing|restarting)/, "it said it was waiting for the restart");
    const exit = await within(run.exited, 60_000);
    assert.is(exit?.code, 0, `weir run ended with 0: ${run.stderr().slice(-600)}`);
    assert.match(run.stderr(), /restarting \(restart 1, fixed-delay/);
  } finally {
    if (run.child.exitCode === null) run.child.kill("SIGKILL");
    await nc.close();
  }
});

test("SIGTERM while the job has not started yet (its input stream is missing, it restarts): weir run ends at once with one line", async () => {
  const run = startWeir(["run", JOB, "--nats", nats.url, "--quiet"], { env: { SINKJOB_NAME: "nostart", SINKJOB_RESTART_DELAY_MS: "12000" } });
  try {
    await run.waitForStderr("restarting (restart 1", 60_000);
    run.child.kill("SIGTERM");
    const exit = await within(run.exited, 30_000);
    assert.ok(exit, "weir run ended before the next restart was due");
    assert.is.not(exit.code, null, "it ended by itself with an exit code, not killed by the signal");
    assert.is.not(exit.code, 0);
    assert.is(run.stderr().trimEnd().split("\n").at(-1), "weir: nostart stopped by SIGTERM before it started");
  } finally {
    if (run.child.exitCode === null) run.child.kill("SIGKILL");
  }
});

test("SIGINT while weir run still loads the job file: one line and exit 130, not a silent exit", async () => {
  const run = startWeir(["run", "tests/fixtures/jobs/slow-load.ts", "--nats", nats.url]);
  try {
    await run.waitForStderr("slow-load: loading", 60_000);
    run.child.kill("SIGINT");
    const exit = await within(run.exited, 30_000);
    assert.ok(exit, "weir run ended");
    assert.is(exit.code, 130);
    assert.is(exit.stderr.trimEnd().split("\n").at(-1), "weir: stopped by SIGINT before the job started");
  } finally {
    if (run.child.exitCode === null) run.child.kill("SIGKILL");
  }
});

test("no such job: weir stop exits non-zero with one line", async () => {
  const stop = await runWeir(["stop", "nosuchjob", "--nats", nats.url]);
  assert.is(stop.code, 1);
  assert.is(stop.stderr.trim(), "weir: job nosuchjob is not running");
});

test.run();
