// A job spread over two workers rides through a NATS server restart while its channels are quiet, as
// one process does (tests/nats-disconnect): once the connections are back every producer probes its
// channels and no consumer finds a gap, so the deployment goes on (no restart, the same epoch), and later
// input is counted on from the state it had: each key's counts 1..n exactly once. Checkpoints only when
// the test asks: one in flight during the outage is aborted, which would blur what is tested. The input
// often resumes while one worker is back and the other not yet (the heartbeats it waits for may be from
// before the kill): frames then wait in their producer until the consumer answers its probe
// (channel-writer.ts; without that hold 6 of 43 runs beside another test restarted the job).
import { test } from "uvu";
import * as assert from "uvu/assert";
import { connect } from "@nats-io/transport-node";
import { jetstream } from "@nats-io/jetstream";
import { RestartableServer } from "./helpers/nats-server.ts";
import { readStream } from "./helpers/streams.ts";
import { eventually, startWeir, type WeirProcess } from "./helpers/cli.ts";
import { checkOutput, KEYS, reset, runningOn, status, stopAll } from "./helpers/worker-counts.ts";
import { askControl } from "../actors/job/control-client.ts";
import { ControlVerb } from "../actors/job/control-protocol.ts";

const JOB = "tests/fixtures/jobs/worker-counts.ts";

test("two workers ride through a server restart while the channels are quiet: no restart, counts go on exactly once", async () => {
  const server = await RestartableServer.start();
  const procs: WeirProcess[] = [];
  const nc = await connect({ servers: server.url, maxReconnectAttempts: -1, reconnectTimeWait: 200 });
  let passed = false;
  try {
    await reset(nc);
    const js = jetstream(nc);
    const publish = async (from: number, to: number) => {
      for (let id = from; id < to; id++) await js.publish(`in.${id % 4}`, JSON.stringify({ id, key: `k${(id * 7) % KEYS}` }), { msgID: String(id) });
    };
    // The exactly-once sink's output appears when a checkpoint completes: one is asked for until it is there.
    const committed = (n: number, what: string) => eventually(what, 90_000, async () => {
      if ((await readStream(nc, "OUT").catch(() => [])).length >= n) return true;
      await askControl(nc, "workers", ControlVerb.Checkpoint, {}, 5000).catch(() => undefined);
      await new Promise((r) => setTimeout(r, 500));
      return undefined;
    });
    for (let i = 0; i < 2; i++) procs.push(startWeir(["run", JOB, "--nats", server.url], { env: { WORKERS_CHECKPOINT_MS: "3600000" } }));
    const before = await runningOn(nc, procs, "the job runs on both workers");
    await publish(0, 200);
    await committed(200, "the first 200 outputs");
    // Quiet channels: no checkpoint of the ones asked for still on its way (its barriers would be frames in flight).
    await eventually("no checkpoint in flight", 30_000, async () => ((await status(nc))?.checkpoints?.inFlight ? undefined : true));

    const leader = procs.find((p) => p.child.pid === before.workers!.find((w) => w.leader)!.pid)!;
    await server.kill();
    await leader.waitForStderr(/NATS connection to \S+ lost/, 30_000);
    await server.restart();
    await leader.waitForStderr(/NATS connection back/, 60_000);
    await eventually("both workers' heartbeats again", 60_000, async () => {
      const s = await status(nc);
      return s?.workers?.length === 2 && s.workers.every((w) => w.heartbeatAgeMs < 1000) ? true : undefined;
    });

    await eventually("300 more records published", 60_000, () => publish(200, 500).then(() => true, () => undefined));
    await committed(500, "every output");
    const after = await eventually("the job's status", 30_000, () => status(nc));
    const logs = procs.map((p) => p.stderr()).join("\n").split("\n").filter((l) => /restart|lost|gap|epoch/i.test(l));
    assert.is(after.restarts, 0, `the job restarted: ${logs.join(" | ")}`);
    assert.is(after.epoch, before.epoch, `a new deployment: ${logs.join(" | ")}`);
    assert.is(after.state, "running");
    await checkOutput(nc, 500);
    passed = true;
  } finally {
    // What the workers said, on a failure (their progress lines left out).
    if (!passed) for (const p of procs) console.log(`worker ${p.child.pid}:\n${p.stderr().split("\n").filter((l) => !/"msg":"weir: workers /.test(l)).slice(-40).join("\n")}`);
    await stopAll(procs);
    await nc.close().catch(() => {});
    await server.stop();
  }
});

test.run();
