// Workers on production NATS: two `weir run` processes of one job on a three-node JetStream cluster
// (--nats with all three URLs, --nats-replicas 3), input arriving all along, while each server in turn is
// SIGKILLed (the JetStream meta leader first), the job making progress while it is down, and restarted on
// its store. The workers' connections move to the servers left, the job log and lease (replicated) go on,
// and the output equals the reference:
// every key's counts 1..n, each exactly once. (tests/workers runs workers on one server; tests/cluster-failover
// one process on a cluster.)
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { connect } from "@nats-io/transport-node";
import { startCluster } from "./helpers/nats-cluster.ts";
import { readStream } from "./helpers/streams.ts";
import { startWeir, eventually, type WeirProcess } from "./helpers/cli.ts";
import { feed, reset, checkOutputExplained, runningOn, stopAll } from "./helpers/worker-counts.ts";

const s = suite("workers on a cluster");
const JOB = "tests/fixtures/jobs/worker-counts.ts";

s("two workers on a three-node cluster (R3), each server SIGKILLed in turn and restarted: the job runs on both again, output exact", async () => {
  const cluster = await startCluster(3);
  const url = cluster.urls.join(",");
  const nc = await connect({ servers: [...cluster.urls], reconnectTimeWait: 250, maxReconnectAttempts: -1 });
  const procs: WeirProcess[] = [];
  let input: ReturnType<typeof feed> | undefined;
  try {
    await reset(nc, 3);
    input = feed(nc, 50);
    const start = () => startWeir(["run", JOB, "--nats", url, "--nats-replicas", "3"], { env: { WORKERS_PARALLELISM: "2" } });
    procs.push(start(), start());
    const first = await runningOn(nc, procs, "the job runs on both workers");
    assert.is(first.natsReplicas, 3, "the job's streams and buckets are replicated");
    const killed: number[] = [];
    for (let round = 0; round < 3; round++) {
      const victim = round === 0 ? await cluster.metaLeader() : [0, 1, 2].find((i) => !killed.includes(i))!;
      killed.push(victim);
      const before = (await readStream(nc, "OUT")).length;
      await cluster.kill(victim);
      // Replicated, the job needs no one server: it goes on while this one is down (with replicas 1 it
      // stalled until the server holding a stream it uses came back).
      await eventually(`round ${round + 1}: new output while s${victim} is down`, 90_000, async () => ((await readStream(nc, "OUT").catch(() => [])).length > before ? true : undefined));
      await cluster.restart(victim);
      await runningOn(nc, procs, `round ${round + 1} (s${victim}): the job runs on both workers again`);
    }
    for (const p of procs) assert.is(p.child.exitCode, null, `no worker died: ${p.stderr().slice(-600)}`);
    const total = await input.stop();
    input = undefined;
    await checkOutputExplained(nc, total, procs);
  } finally {
    await input?.stop().catch(() => {});
    await stopAll(procs);
    await nc.close().catch(() => {});
    await cluster.stop();
  }
});

s.run();
