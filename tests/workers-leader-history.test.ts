// The job's history survives a change of leader. `weir run --workers 2 --http`: once a checkpoint is
// taken the leading worker is SIGKILLed; the other takes over the running job. Its `weir status --json`
// then counts the takeover as a restart (not against the restart strategy, as a lost follower), names the
// lost leader in a failure and a rebalance, and weir_job_restarts_total counts it; after the crashed
// worker is started again and joins, the history is still there.
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { createServer } from "node:net";
import { connect } from "@nats-io/transport-node";
import { withServer } from "./helpers/nats-server.ts";
import { startWeir, eventually, killWeir, freePort } from "./helpers/cli.ts";
import { feed, reset, status, runningOnTwoWorkers } from "./helpers/worker-counts.ts";
import type { JobStatus } from "../actors/job/job-status.ts";

const s = suite("workers leader history");
const nats = withServer(s);
const JOB = "tests/fixtures/jobs/worker-counts.ts";

/** `--workers 2 --http host:port` serves worker n on port + n − 1: two free ports in a row. */
async function twoFreePorts(): Promise<number> {
  const free = (port: number) => new Promise<boolean>((resolve) => {
    const srv = createServer().once("error", () => resolve(false)).listen(port, "127.0.0.1", () => srv.close(() => resolve(true)));
  });
  for (let attempt = 0; attempt < 50; attempt++) {
    const port = await freePort();
    if (port < 65535 && (await free(port + 1))) return port;
  }
  throw new Error("no two free ports in a row");
}

/** weir_job_restarts_total as served by either worker (only the leader serves the job's figures). */
async function restartsMetric(port: number): Promise<number> {
  let total = 0;
  for (const p of [port, port + 1]) {
    const text = await fetch(`http://127.0.0.1:${p}/metrics`).then((r) => r.text()).catch(() => "");
    for (const m of text.matchAll(/^weir_job_restarts_total(?:\{[^}]*\})? (\S+)$/gm)) total += Number(m[1]);
  }
  return total;
}

s("SIGKILL of the leading worker: the new leader's status and /metrics show the restart, the lost leader's failure and rebalance", async () => {
  const nc = await connect({ servers: nats.url });
  const port = await twoFreePorts();
  const supervisor = startWeir(["run", JOB, "--nats", nats.url, "--workers", "2", "--http", `127.0.0.1:${port}`], { env: { WORKERS_PARALLELISM: "2" } });
  let input: ReturnType<typeof feed> | undefined;
  try {
    await reset(nc);
    input = feed(nc, 50);
    await runningOnTwoWorkers(nc);
    const before = await eventually("a completed checkpoint on two workers", 90_000, async () => {
      const st = await status(nc);
      return st?.state === "running" && st.workers?.length === 2 && (st.checkpoints?.completed ?? 0) >= 1 ? st : undefined;
    });
    // Said with the failures: a fresh run restarted once in a full suite on a loaded machine (2026-12-07), not alone.
    assert.is(before.restarts, 0, `a fresh run has not restarted: ${JSON.stringify(before.failures)}`);
    assert.equal(before.failures, [], "nor failed");
    assert.ok((before.rebalances ?? []).length >= 1, "the first deployment is listed");
    // Each worker says on its own /metrics whether its NATS connection is up, the follower as the leader.
    for (const p of [port, port + 1]) {
      const text = await fetch(`http://127.0.0.1:${p}/metrics`).then((r) => r.text());
      assert.match(text, /^weir_worker_nats_connected\{[^}]*worker="[^"]+"[^}]*\} 1$/m, `port ${p}: ${text.slice(0, 300)}`);
    }
    const lost = before.workers!.find((w) => w.leader)!;
    const survivor = before.workers!.find((w) => !w.leader)!;
    process.kill(lost.pid, "SIGKILL");

    const after = await eventually("the job runs under the other worker", 90_000, async () => {
      const st = await status(nc);
      return st?.state === "running" && st.workers?.find((w) => w.leader)?.pid === survivor.pid ? st : undefined;
    });
    const why = (st: JobStatus) => JSON.stringify({ restarts: st.restarts, failures: st.failures, rebalances: st.rebalances });
    assert.ok(after.restarts >= 1, `the takeover is a restart: ${why(after)}`);
    assert.ok(after.failures.some((f) => f.error.includes(`leader worker ${lost.id}`) && f.restarted), `a failure names the lost leader: ${why(after)}`);
    assert.ok((after.rebalances ?? []).some((r) => r.cause.includes(`leader worker ${lost.id}`)), `a rebalance names it: ${why(after)}`);
    for (const r of before.rebalances ?? []) {
      assert.ok((after.rebalances ?? []).some((x) => x.epoch === r.epoch && x.cause === r.cause), `the first leader's rebalance ${JSON.stringify(r)} carried on: ${why(after)}`);
    }
    await eventually("weir_job_restarts_total counts the takeover", 60_000, async () => ((await restartsMetric(port)) >= 1 ? true : undefined));

    // The crashed worker, started again by the supervisor, joins: a rebalance, and nothing forgotten.
    const joined = await eventually("the job runs on two workers again", 90_000, async () => {
      const st = await status(nc);
      return st?.state === "running" && st.workers?.length === 2 && st.workers.every((w) => w.subtasks.length > 0 && w.pid !== lost.pid) ? st : undefined;
    });
    assert.ok(joined.restarts >= after.restarts, `restarts kept: ${why(joined)}`);
    assert.ok(joined.failures.some((f) => f.error.includes(`leader worker ${lost.id}`)), `the failure kept: ${why(joined)}`);
    assert.match(supervisor.stderr(), /taking over the running job: restoring checkpoint \d+/);
  } finally {
    await input?.stop().catch(() => {});
    killWeir(supervisor);
    await supervisor.exited;
    await nc.close().catch(() => {});
  }
});

s.run();
