// `weir stop <job> --savepoint`, then `weir run` again at another parallelism, as a user upgrades or
// rescales a job from the command line: the stop exits 0 once the savepoint is taken and names it (as
// `flink stop` does), every `weir run` process of the job ends with 0, `weir checkpoints` shows it as the
// latest, and the next run resumes from it (--restore latest, the default) at parallelism 3: every key's
// count goes on from where it stopped and the exactly-once output holds every event once. The first run
// is one process, or two workers (`--workers 2`), each on a server of its own.
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { connect, type NatsConnection } from "@nats-io/transport-node";
import { withServer } from "./helpers/nats-server.ts";
import { createStream, publishAll, readStream } from "./helpers/streams.ts";
import { eventually, runWeir, startWeir, within, type WeirProcess } from "./helpers/cli.ts";

const JOB = "tests/fixtures/jobs/worker-counts.ts";
const KEYS = 10;

interface Count { key: string; n: number; id: number }

function publishEvents(nc: NatsConnection, from: number, to: number): Promise<void> {
  const events: Array<[string, unknown]> = [];
  for (let id = from; id < to; id++) events.push([`in.${id % 4}`, { id, key: `k${id % KEYS}` }]);
  return publishAll(nc, events);
}

async function outputsReach(nc: NatsConnection, n: number): Promise<Count[]> {
  return eventually(`${n} outputs`, 90_000, async () => {
    const out = await readStream<Count>(nc, "OUT");
    return out.length >= n ? out : undefined;
  });
}

for (const firstRun of ["one process", "two workers"] as const) {
  const test = suite(`weir stop --savepoint (first run: ${firstRun})`);
  const nats = withServer(test);
  const run = (parallelism: number, extra: readonly string[] = []): WeirProcess =>
    startWeir(["run", JOB, "--nats", nats.url, "--parallelism", String(parallelism), ...extra], { env: { WORKERS_CHECKPOINT_MS: "200" } });
  const status = async <T>(): Promise<T | undefined> => {
    const r = await runWeir(["status", "workers", "--json", "--nats", nats.url]);
    return r.code === 0 ? (JSON.parse(r.stdout) as T) : undefined;
  };

  test(`stop with a savepoint, list it, resume at parallelism 3: counts go on, every event out once (first run: ${firstRun})`, async () => {
    const nc = await connect({ servers: nats.url });
    const runs: WeirProcess[] = [];
    try {
      await createStream(nc, "IN", ["in.*"]);
      await createStream(nc, "OUT", ["out.>"]);
      await publishEvents(nc, 0, 200);
      if (firstRun === "one process") {
        runs.push(run(2));
        await runs[0]!.waitForStderr("weir: running workers", 60_000);
      } else {
        runs.push(run(2, ["--workers", "2"]));
        await eventually("the job on two workers", 60_000, async () => ((await status<{ workers?: unknown[] }>())?.workers?.length === 2 ? true : undefined));
      }
      await outputsReach(nc, 200);

      const stop = await runWeir(["stop", "workers", "--savepoint", "--nats", nats.url], { deadlineMs: 90_000 });
      assert.is(stop.code, 0, `weir stop --savepoint: ${stop.stderr}`);
      const named = /^workers: stopped with savepoint (\d+) /.exec(stop.stdout);
      assert.ok(named, `weir stop --savepoint names the savepoint: ${stop.stdout}`);
      const first = await within(runs[0]!.exited, 60_000);
      assert.is(first?.code, 0, `the first weir run (all its workers) ended with 0: ${runs[0]!.stderr().slice(-600)}`);
      // Its summary names the savepoint too (with workers, the one that led and took it).
      assert.match(first!.stdout, new RegExp(`; savepoint ${named[1]} taken`), first!.stdout);

      const listed = await runWeir(["checkpoints", "workers", "--nats", nats.url, "--json"]);
      assert.is(listed.code, 0, listed.stderr);
      const latest = (JSON.parse(listed.stdout) as { latest?: { id: number; kind: string } }).latest;
      assert.is(latest?.kind, "savepoint", `weir checkpoints: the latest is the savepoint: ${listed.stdout.slice(0, 400)}`);
      assert.is(latest?.id, Number(named[1]), "the savepoint weir stop named is the latest");

      await publishEvents(nc, 200, 400);
      runs.push(run(3));
      await runs[1]!.waitForStderr("weir: running workers", 60_000);
      await outputsReach(nc, 400);
      const resumed = await status<{ parallelism: number; restoredFrom?: number }>();
      assert.is(resumed?.restoredFrom, latest!.id, "the second run resumed from the savepoint");
      assert.is(resumed?.parallelism, 3);
      const shown = await runWeir(["status", "workers", "--nats", nats.url]);
      assert.match(shown.stdout, new RegExp(`^  checkpoints: .*; restored from ${latest!.id}\\b`, "m"), `weir status names what the run restored from: ${shown.stdout.slice(0, 600)}`);
      const stopAgain = await runWeir(["stop", "workers", "--nats", nats.url], { deadlineMs: 90_000 });
      assert.is(stopAgain.code, 0, stopAgain.stderr);
      assert.is((await within(runs[1]!.exited, 60_000))?.code, 0, runs[1]!.stderr().slice(-600));

      const final = await readStream<Count>(nc, "OUT");
      assert.is(final.length, 400, "every event out once, none twice");
      assert.equal(final.map((o) => o.id).sort((a, b) => a - b), Array.from({ length: 400 }, (_, i) => i));
      for (let k = 0; k < KEYS; k++) {
        const counts = final.filter((o) => o.key === `k${k}`).map((o) => o.n).sort((a, b) => a - b);
        assert.equal(counts, Array.from({ length: 40 }, (_, i) => i + 1), `key k${k}: the count went on from the savepoint`);
      }
    } finally {
      for (const r of runs) if (r.child.exitCode === null) r.child.kill("SIGKILL");
      await nc.close();
    }
  });

  test.run();
}
