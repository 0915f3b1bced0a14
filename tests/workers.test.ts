// Distributed execution: several `weir run` processes of one job on one NATS server are its workers.
// While input keeps arriving, workers are SIGKILLed (the leader among them) and started again, join and
// leave gracefully, and are frozen (SIGSTOP) past their lease; every run ends with the output equal to
// the reference: every key's counts 1..n, each exactly once.
import { suite } from "uvu";
import { readFileSync } from "node:fs";
import * as assert from "uvu/assert";
import { connect } from "@nats-io/transport-node";
import { withServer } from "./helpers/nats-server.ts";
import { createStream, publishAll, readStream } from "./helpers/streams.ts";
import { startWeir, runWeir, eventually, within, freePort, type WeirProcess } from "./helpers/cli.ts";
import { fetchStatus } from "../runtime/cli/commands/control.ts";
import type { JobStatus } from "../actors/job/job-status.ts";
import { faultRounds } from "./helpers/fault-rounds.ts";
import { feed, reset, checkOutput, status, runningOnTwoWorkers, runningOn, stopAll, KEYS, withInput as withFedInput, type FedRun } from "./helpers/worker-counts.ts";

const workers = suite("workers");
const nats = withServer(workers);
const JOB = "tests/fixtures/jobs/worker-counts.ts";
const TIMERS_JOB = "tests/fixtures/jobs/timers.ts";

const start = (url: string, env: Record<string, string> = {}) => startWeir(["run", JOB, "--nats", url], { env });

/** Fresh streams, input arriving in the background, and every worker process killed at the end. */
const withInput = (body: (run: FedRun) => Promise<void>): Promise<void> => withFedInput(nats.url, 100, body);


/** Workers SIGKILLed in the first test, every third the leader (npm run faults: more). */
const KILLS = faultRounds(4);

workers(`SIGKILL of random workers, the leader among them, ${KILLS} times: output exact`, () => withInput(async ({ nc, procs, stopInput }) => {
  procs.push(start(nats.url), start(nats.url));
  await runningOn(nc, procs, "two workers share the job");
  let seed = 7;
  const rand = () => ((seed = (seed * 1103515245 + 12345) & 0x7fffffff) / 0x7fffffff);
  let leaderKills = 0;
  for (let i = 0; i < KILLS; i++) {
    const s = await runningOn(nc, procs, `kill ${i}: the job runs on both workers`);
    const leaderPid = s.workers!.find((w) => w.leader)!.pid;
    const victim = i % 3 === 0 ? procs.findIndex((p) => p.child.pid === leaderPid) : Math.floor(rand() * procs.length);
    if (procs[victim]!.child.pid === leaderPid) leaderKills++;
    procs[victim]!.child.kill("SIGKILL");
    await procs[victim]!.exited;
    procs[victim] = start(nats.url);
  }
  await runningOn(nc, procs, "the job runs on both workers after the kills");
  const total = await stopInput();
  assert.ok(leaderKills >= Math.ceil(KILLS / 3), `the leader was killed ${leaderKills} times`);
  await checkOutput(nc, total);
}));

workers("--restore none: a worker taking over from a SIGKILLed leader continues the run instead of starting it again: output exact", () => withInput(async ({ nc, procs, stopInput }) => {
  // Each worker is started as a fresh run would be; the replacements too, as `--workers N` restarts them.
  const startFresh = () => startWeir(["run", JOB, "--nats", nats.url, "--restore", "none"]);
  procs.push(startFresh(), startFresh());
  for (let i = 0; i < 2; i++) {
    const s = await runningOn(nc, procs, `kill ${i}: the job runs on both workers`);
    const before = (await readStream(nc, "OUT")).length;
    await eventually(`kill ${i}: output committed before the leader is killed`, 60_000, async () => ((await readStream(nc, "OUT")).length > before ? true : undefined));
    const leader = procs.findIndex((p) => p.child.pid === s.workers!.find((w) => w.leader)!.pid);
    procs[leader]!.child.kill("SIGKILL");
    await procs[leader]!.exited;
    procs[leader] = startFresh();
  }
  await runningOn(nc, procs, "the job runs on both workers after the kills");
  const total = await stopInput();
  await checkOutput(nc, total);
}));

workers("a new run after the last one was SIGKILLed whole honours --restore: a missing checkpoint is an error, none counts the input again from 1", () => withInput(async ({ nc, procs, stopInput }) => {
  procs.push(start(nats.url));
  await runningOn(nc, procs, "the first run runs");
  const total = await stopInput();
  await checkOutput(nc, total);
  procs[0]!.child.kill("SIGKILL");
  await procs[0]!.exited;
  // The job log still holds the dead run's deployment and lease: neither is a live run to take over.
  const missing = await runWeir(["run", JOB, "--nats", nats.url, "--restore", "99999", "--quiet"], { deadlineMs: 90_000 });
  assert.is.not(missing.code, 0, missing.stderr);
  assert.match(missing.stderr, "checkpoint 99999 of job workers does not exist");
  procs.push(startWeir(["run", JOB, "--nats", nats.url, "--restore", "none"]));
  await eventually("every input counted a second time, from 1", 120_000, async () => ((await readStream(nc, "OUT")).length >= 2 * total ? true : undefined));
  const out = await readStream<{ key: string; n: number }>(nc, "OUT");
  const ones = out.filter((o) => o.n === 1).length;
  assert.is(ones, 2 * KEYS, "each key counted from 1 in both runs");
}));

workers("a worker started with other options (another parallelism) gets no subtasks and ends with one line; the job runs on, output exact", () => withInput(async ({ nc, procs, stopInput }) => {
  procs.push(start(nats.url));
  await runningOn(nc, procs, "the first worker runs the job");
  const other = await runWeir(["run", JOB, "--nats", nats.url], { env: { WORKERS_PARALLELISM: "2" }, deadlineMs: 90_000 });
  assert.is.not(other.code, 0, other.stderr);
  const lines = other.stderr.trim().split("\n").filter((l) => l.startsWith("weir: "));
  assert.is(lines.length, 1, other.stderr);
  assert.match(lines[0]!, /gives this worker no subtasks: it runs parallelism 2 \(the leader's: 4\)/);
  assert.match(procs[0]!.stderr(), /is given no subtasks: it runs parallelism 2/);
  await runningOn(nc, procs, "the job still runs on the first worker alone");
  const total = await stopInput();
  await checkOutput(nc, total);
}));

workers("a spare worker (more workers than subtasks to place) counts as started and reads ready, a spare, on /readyz: SIGTERM makes it leave, exit 0", () => withInput(async ({ nc, procs }) => {
  const env = { WORKERS_PARALLELISM: "1" };
  const ports = [await freePort(), await freePort(), await freePort()];
  procs.push(...ports.map((port) => startWeir(["run", JOB, "--nats", nats.url, "--http", `127.0.0.1:${port}`], { env })));
  // Parallelism 1: one worker runs both subtasks (a source and the keyed count); of three, at least one
  // that does not lead is spare (the leader may be one too).
  const spareFollower = (st: JobStatus | undefined) => st?.workers?.find((w) => w.subtasks.length === 0 && !w.leader);
  const s = await eventually("three workers, a follower among them without subtasks", 90_000, async () => {
    const st = await status(nc);
    return st?.state === "running" && st.workers?.length === 3 && spareFollower(st) ? st : undefined;
  });
  const spare = procs.find((p) => p.child.pid === spareFollower(s)!.pid)!;
  const busy = procs.find((p) => p.child.pid === s.workers!.find((w) => w.subtasks.length > 0)!.pid)!;
  // The leader lists it as soon as its heartbeat comes; it starts once it reads the deployment that left
  // it out, a moment later (a SIGTERM in between stopped it "before it started").
  await spare.waitForStderr("running workers", 30_000);
  // Ready, not "deploying" for ever: a rolling update waits for every new worker to be ready. Waited
  // for: under load the third worker's arrival may restart the job a moment (503 "restarting" then).
  const ready = async (proc: WeirProcess, text: string) => {
    let last: unknown[] = [];
    const deadline = Date.now() + 60_000;
    while (Date.now() < deadline) {
      const r = await fetch(`http://127.0.0.1:${ports[procs.indexOf(proc)]}/readyz`);
      last = [r.status, await r.text()];
      if (last[0] === 200 && last[1] === text) return;
      await new Promise((r) => setTimeout(r, 200));
    }
    assert.equal(last, [200, text], "ready within 60 s");
  };
  await ready(spare, "ready: job workers is running on its other workers; this worker is a spare (the job places no subtasks on it)\n");
  await ready(busy, "ready: job workers is running\n");
  spare.child.kill("SIGTERM");
  const exit = await within(spare.exited, 60_000);
  assert.is(exit?.code, 0, spare.stderr().slice(-600));
  assert.not.match(spare.stderr(), /before it started/);
}));

workers("a worker joins, another leaves on SIGTERM, one is frozen past its lease: output exact", () => withInput(async ({ nc, procs, stopInput }) => {
  procs.push(start(nats.url));
  await runningOn(nc, procs, "one worker runs the job");
  procs.push(start(nats.url));
  const two = await runningOn(nc, procs, "a second worker joined");
  assert.ok((two.rebalances ?? []).some((r) => /joined/.test(r.cause)), `a rebalance names the join: ${JSON.stringify(two.rebalances)}`);
  procs.push(start(nats.url));
  await runningOn(nc, procs, "a third worker joined");
  // The first worker leaves gracefully (a rolling restart's step).
  const leaving = procs.shift()!;
  leaving.child.kill("SIGTERM");
  const left = await leaving.exited;
  assert.is(left.code, 0, `the leaving worker exits 0: ${left.stderr.slice(-400)}`);
  await runningOn(nc, procs, "the two others run the job");
  // Frozen past its lease: the others continue without it; thawed, it must not write (fenced).
  const frozen = procs[1]!;
  frozen.child.kill("SIGSTOP");
  await runningOn(nc, [procs[0]!], "the job continues on the worker not frozen");
  frozen.child.kill("SIGCONT");
  await runningOn(nc, procs, "the thawed worker is a worker of the job again");
  const total = await stopInput();
  await checkOutput(nc, total);
  assert.match(frozen.stderr(), /cancelling the subtasks of epoch \d+/, "the thawed worker dropped its old epoch's subtasks");
}));

workers("parallelism auto follows the workers: 1, then 2, then 3, then 2 again; output exact", () => withInput(async ({ nc, procs, stopInput }) => {
  const auto = { WORKERS_PARALLELISM: "auto" };
  procs.push(start(nats.url, auto));
  assert.is((await runningOn(nc, procs, "one worker")).parallelism, 1);
  procs.push(start(nats.url, auto));
  const two = await runningOn(nc, procs, "two workers");
  assert.is(two.parallelism, 2);
  assert.is(two.subtasks.length, 2 * 2, "2 chains (source; count and sink) × 2");
  assert.equal(two.workers!.map((w) => w.subtasks.length), [2, 2], "a chain's subtasks of one index on each worker");
  procs.push(start(nats.url, auto));
  assert.is((await runningOn(nc, procs, "three workers")).parallelism, 3);
  const leaving = procs.pop()!;
  leaving.child.kill("SIGTERM");
  await leaving.exited;
  assert.is((await runningOn(nc, procs, "two workers again")).parallelism, 2);
  const total = await stopInput();
  await checkOutput(nc, total);
}));

for (const stopWith of ["weir stop", "Ctrl-C", "SIGTERM to one follower"] as const) {
  workers(`weir run --workers 2 starts two workers of the job; ${stopWith} stops the whole job gracefully: both exit 0, status says stopped, output exact`, async () => {
    const nc = await connect({ servers: nats.url });
    const supervisor = startWeir(["run", JOB, "--nats", nats.url, "--workers", "2"], { env: { WORKERS_PARALLELISM: "2" } });
    let input: ReturnType<typeof feed> | undefined;
    try {
      await reset(nc);
      input = feed(nc, 100);
      await supervisor.waitForStderr("weir: starting 2 workers", 30_000);
      const s = await runningOnTwoWorkers(nc);
      assert.ok(s.workers!.every((w) => w.pid !== supervisor.child.pid), "the workers are processes of their own");
      // As the `weir` command's shebang sets it for one process (bin/weir.mjs).
      for (const w of s.workers!) assert.match(readFileSync(`/proc/${w.pid}/cmdline`, "utf8"), /--max-semi-space-size=32\0/, `worker ${w.pid}'s node flags`);
      const total = await input.stop();
      input = undefined;
      await checkOutput(nc, total);
      if (stopWith === "weir stop") {
        const stop = await runWeir(["stop", "workers", "--nats", nats.url]);
        assert.is(stop.code, 0, `weir stop: ${stop.stdout}${stop.stderr}`);
      } else if (stopWith === "Ctrl-C") supervisor.child.kill("SIGINT");
      // One child alone (a `kill <pid>`): the same as for the group, not a worker waiting a minute to leave.
      else process.kill(s.workers!.find((w) => !w.leader)!.pid, "SIGTERM");
      const exit = await within(supervisor.exited, 90_000);
      assert.is(exit?.code, 0, `the supervisor exits 0 once both workers ended: ${supervisor.stderr().slice(-800)}`);
      assert.not.match(supervisor.stderr(), /leaving|no longer leading/, "the workers did not leave one by one");
      const last = await runWeir(["status", "workers", "--nats", nats.url]);
      assert.match(last.stdout, /^workers: not running; stopped /m, `weir status: ${last.stdout}${last.stderr}`);
      await checkOutput(nc, total);
      // Each worker's lines say which it is: a "[worker n]" prefix, or "process": n in a JSON log line (stderr not a terminal).
      assert.match(supervisor.stderr(), /\[worker 1\]|^\{"process":1,/m);
      assert.match(supervisor.stderr(), /\[worker 2\]|^\{"process":2,/m);
    } finally {
      await input?.stop().catch(() => {});
      if (supervisor.child.exitCode === null) supervisor.child.kill("SIGKILL");
      await nc.close();
    }
  });
}

workers("weir run --workers 2: SIGTERM while a crashed worker waits to be started again ends the run with exit 0", async () => {
  const nc = await connect({ servers: nats.url });
  const supervisor = startWeir(["run", JOB, "--nats", nats.url, "--workers", "2"], { env: { WORKERS_PARALLELISM: "2" } });
  try {
    await reset(nc);
    const s = await runningOnTwoWorkers(nc);
    process.kill(s.workers![0]!.pid, "SIGKILL");
    await supervisor.waitForStderr(/died \(SIGKILL\); starting it again/, 30_000);
    supervisor.child.kill("SIGTERM");
    const exit = await within(supervisor.exited, 60_000);
    assert.is(exit?.code, 0, `the supervisor ends, exit 0: ${supervisor.stderr().slice(-800)}`);
    assert.match(supervisor.stderr(), /not started again: the run is stopping/);
  } finally {
    if (supervisor.child.exitCode === null) supervisor.child.kill("SIGKILL");
    await nc.close();
  }
});

workers("event-time windows on two workers, one SIGKILLed after a checkpoint each round: every window once, complete", async () => {
  const nc = await connect({ servers: nats.url });
  const procs: WeirProcess[] = [];
  try {
    for (const [name, subject] of [["WW_W", "www.*"], ["WW_P", "wwp.*"], ["WW_OW", "wwow.>"], ["WW_OP", "wwop.>"]] as const) await createStream(nc, name, [subject]);
    // As the windowed crash test: 1 s windows of 1000 readings over 63 keys, each key's readings of a
    // window together, chunks ending on window boundaries. Each round's pair runs unbounded, so a kill
    // always lands mid-run (a bounded round could end before its first checkpoint: CI once saw one kill in
    // four rounds); the survivor goes on alone and `weir stop` ends it. A last bounded run reads the rest.
    const rounds = faultRounds(2);
    const events = Array.from({ length: 6000 * rounds }, (_, i) => ({ k: `k${Math.floor((i % 1000) / 16)}`, ts: i }));
    const env = { TIMERS_PREFIX: "WW", TIMERS_CHECKPOINT_MS: "150" };
    for (let r = 0; r < rounds; r++) {
      const chunk = events.slice((r * events.length) / rounds, ((r + 1) * events.length) / rounds);
      await publishAll(nc, chunk.map((e) => [`www.${e.ts % 2 ? "a" : "b"}`, e] as [string, unknown]));
      const pair = [startWeir(["run", TIMERS_JOB, "--nats", nats.url], { env }), startWeir(["run", TIMERS_JOB, "--nats", nats.url], { env })];
      procs.push(...pair);
      // Once a checkpoint of the two-worker deployment completed, kill one of them.
      const victim = await eventually(`round ${r}: a checkpoint on two workers`, 90_000, async () => {
        for (const p of pair) assert.is(p.child.exitCode, null, `round ${r}: a worker ended early: ${p.stderr().slice(-600)}`);
        const st = await fetchStatus(nc, "timers-ww").catch(() => undefined);
        if (st?.state !== "running" || st.workers?.length !== 2 || (st.checkpoints?.completed ?? 0) < 1) return undefined;
        return pair.find((p) => p.child.pid === st.workers![r % 2]!.pid);
      });
      victim.child.kill("SIGKILL");
      const survivor = pair.find((p) => p !== victim)!;
      await eventually(`round ${r}: the job runs on the worker left`, 90_000, async () => {
        const st = await fetchStatus(nc, "timers-ww").catch(() => undefined);
        return st?.state === "running" && st.workers?.length === 1 && st.workers[0]!.pid === survivor.child.pid ? true : undefined;
      });
      const stop = await runWeir(["stop", "timers-ww", "--nats", nats.url]);
      assert.is(stop.code, 0, `round ${r}: weir stop: ${stop.stdout}${stop.stderr}`);
      const exit = await within(survivor.exited, 120_000);
      assert.is(exit?.code, 0, `round ${r}: the worker left stops with the job: ${exit?.stderr.slice(-600)}`);
      assert.ok(await within(victim.exited, 10_000), `round ${r}: the SIGKILLed worker is gone`);
    }
    const last = startWeir(["run", TIMERS_JOB, "--nats", nats.url], { env: { ...env, TIMERS_BOUNDED: "1" } });
    procs.push(last);
    const exit = await within(last.exited, 120_000);
    assert.is(exit?.code, 0, `the final run completes: ${last.stderr().slice(-600)}`);
    const expected = new Map<string, number>();
    for (const e of events) { const id = `${e.k}@${Math.floor(e.ts / 1000) * 1000}`; expected.set(id, (expected.get(id) ?? 0) + 1); }
    const out = await readStream<{ k: string; w: number; n: number }>(nc, "WW_OW");
    const got = new Map<string, number[]>();
    for (const o of out) got.set(`${o.k}@${o.w}`, [...(got.get(`${o.k}@${o.w}`) ?? []), o.n]);
    for (const [id, n] of expected) assert.equal(got.get(id), [n], `window ${id}: fired once with all ${n} readings`);
    assert.is(out.length, expected.size, "one result per window, none lost, none duplicated");
  } finally {
    await stopAll(procs);
    await nc.close();
  }
});

workers.run();
