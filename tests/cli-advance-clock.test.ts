// `weir advance-clock <job> <ms>` against a real `weir run --manual-clock` process: the job's processing
// time moves by what is asked, and its processing-time windows fire when it passes their end, on every
// worker of a job spread over several; a job on the system clock refuses, in one line.
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { connect } from "@nats-io/transport-node";
import { jetstreamManager } from "@nats-io/jetstream";
import { withServer } from "./helpers/nats-server.ts";
import { createStream, publishAll } from "./helpers/streams.ts";
import { eventually, runWeir, startWeir, within } from "./helpers/cli.ts";

const test = suite("weir advance-clock");
const nats = withServer(test);
const JOB = "examples/scenarios/hourly-totals.ts";
const order = (customer: string, amount: number): [string, string] => ["orders.web", JSON.stringify({ customer, amount })];

async function hourlyCount(nc: Awaited<ReturnType<typeof connect>>): Promise<number> {
  try {
    return (await (await jetstreamManager(nc)).streams.info("HOURLY")).state.messages;
  } catch {
    return 0;
  }
}

test("a --manual-clock job: advance-clock prints its new time and fires the hour's windows; the system clock refuses", async () => {
  const nc = await connect({ servers: nats.url });
  await createStream(nc, "ORDERS", ["orders.>"]);
  await publishAll(nc, [order("ann", 2), order("bob", 3), order("ann", 5)]);
  let run = startWeir(["run", JOB, "--nats", nats.url, "--state-backend", "heap", "--manual-clock", "0"]);
  try {
    await run.waitForStderr("weir: running scenario-hourly-totals", 60_000);
    // The window operator took in all three at processing time 0.
    await eventually("3 orders in the windows", 60_000, async () => {
      const s = await runWeir(["status", "scenario-hourly-totals", "--json", "--nats", nats.url]);
      const subtasks = (JSON.parse(s.stdout) as { subtasks: Array<{ name: string; recordsIn: number }> }).subtasks;
      return subtasks.filter((t) => t.name.startsWith("hourly")).reduce((n, t) => n + t.recordsIn, 0) === 3 ? true : undefined;
    });
    const first = await runWeir(["advance-clock", "scenario-hourly-totals", "3599998", "--nats", nats.url]);
    assert.is(first.code, 0, first.stderr);
    assert.is(first.stdout.trim(), "scenario-hourly-totals: processing time 1970-01-01T00:59:59.998Z (3599998 ms)");
    assert.is(await hourlyCount(nc), 0, "nothing fires before the window's last millisecond");
    const second = await runWeir(["advance-clock", "scenario-hourly-totals", "1", "--nats", nats.url]);
    assert.is(second.stdout.trim(), "scenario-hourly-totals: processing time 1970-01-01T00:59:59.999Z (3599999 ms)");
    await eventually("the hour's two windows fired", 60_000, async () => ((await hourlyCount(nc)) === 2 ? true : undefined));
    run.child.kill("SIGTERM");
    assert.is((await within(run.exited, 60_000))?.code, 0, run.stderr().slice(-600));

    run = startWeir(["run", JOB, "--nats", nats.url, "--state-backend", "heap", "--restore", "none"]);
    await run.waitForStderr("weir: running scenario-hourly-totals", 60_000);
    const refused = await runWeir(["advance-clock", "scenario-hourly-totals", "1000", "--nats", nats.url]);
    assert.is(refused.code, 1);
    assert.is(refused.stderr.trim(), "weir: cannot advance the clock of job scenario-hourly-totals: the job runs on the system clock (start it with weir run --manual-clock <ms> to move its processing time by hand)");
  } finally {
    if (run.child.exitCode === null) run.child.kill("SIGKILL");
    await nc.close();
  }
});

test("advance-clock to no job: one line, exit 1", async () => {
  const none = await runWeir(["advance-clock", "nojob", "5", "--nats", nats.url]);
  assert.is(none.code, 1);
  assert.is(none.stderr.trim(), "weir: job nojob is not running");
});

test("--manual-clock with --workers 2: advance-clock moves every worker's clock, so windows on both workers fire", async () => {
  const nc = await connect({ servers: nats.url });
  const jsm = await jetstreamManager(nc);
  for (const stream of ["ORDERS", "HOURLY"]) await jsm.streams.delete(stream).catch(() => {});
  await createStream(nc, "ORDERS", ["orders.>"]);
  const customers = ["ann", "bob", "cid", "dee", "eve", "fay", "gus", "hal"];
  await publishAll(nc, customers.map((c, i) => order(c, i + 1)));
  const run = startWeir(["run", JOB, "--nats", nats.url, "--state-backend", "heap", "--manual-clock", "0", "--workers", "2", "--restore", "none"]);
  try {
    await run.waitForStderr("weir: starting 2 workers", 30_000);
    // Both workers run a window subtask, and the windows took in every order at processing time 0.
    await eventually("8 orders in the windows of two workers", 90_000, async () => {
      const s = await runWeir(["status", "scenario-hourly-totals", "--json", "--nats", nats.url]);
      if (s.code !== 0) return undefined;
      const st = JSON.parse(s.stdout) as { state: string; workers?: Array<{ subtasks: string[] }>; subtasks: Array<{ name: string; recordsIn: number }> };
      const windowWorkers = (st.workers ?? []).filter((w) => w.subtasks.some((id) => id.startsWith("hourly")));
      const inWindows = st.subtasks.filter((t) => t.name.startsWith("hourly")).reduce((n, t) => n + t.recordsIn, 0);
      return st.state === "running" && windowWorkers.length === 2 && inWindows === 8 ? true : undefined;
    });
    const moved = await runWeir(["advance-clock", "scenario-hourly-totals", "3599999", "--nats", nats.url]);
    assert.is(moved.code, 0, moved.stderr);
    assert.is(moved.stdout.trim(), "scenario-hourly-totals: processing time 1970-01-01T00:59:59.999Z (3599999 ms)");
    await eventually("every customer's hour fired, on both workers", 60_000, async () => ((await hourlyCount(nc)) === 8 ? true : undefined));
    run.child.kill("SIGTERM");
    assert.is((await within(run.exited, 60_000))?.code, 0, run.stderr().slice(-600));
  } finally {
    if (run.child.exitCode === null) run.child.kill("SIGKILL");
    await nc.close();
  }
});

test.run();
