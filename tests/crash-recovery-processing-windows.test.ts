// Exactly-once processing-time windows under a crash: a job summing per key in 200 ms processing-time
// windows, with an exactly-once sink, is SIGKILLed after a checkpoint while input keeps arriving, then
// run again. Windows open at the checkpoint come back with their contents and timers, the records after
// it are read again: the window sums in the output add up to the input's, none lost, none twice.
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { connect } from "@nats-io/transport-node";
import { withServer } from "./helpers/nats-server.ts";
import { createStream, publishAll, readStream } from "./helpers/streams.ts";
import { runJob } from "./helpers/crash.ts";
import { eventually, runWeir, startWeir, type WeirProcess } from "./helpers/cli.ts";
import type { WindowSum } from "./fixtures/jobs/processing-windows.ts";

const crash = suite("crash recovery, processing-time windows");
const nats = withServer(crash);
const JOB = "tests/fixtures/jobs/processing-windows.ts";

crash("SIGKILL after a checkpoint, processing-time windows on KV state: the output's sums add up to the input's", async () => {
  const nc = await connect({ servers: nats.url });
  const P = "PWK";
  const p = P.toLowerCase();
  const env = { PW_PREFIX: P, PW_BACKEND: "jetstream-kv" };
  let second: WeirProcess | undefined;
  try {
    await createStream(nc, `${P}_IN`, [`${p}in.*`]);
    await createStream(nc, `${P}_OUT`, [`${p}out.>`]);
    const hits = Array.from({ length: 12_000 }, (_, i) => [`${p}in.${i % 3 === 0 ? "a" : "b"}`, { k: `k${i % 11}`, n: i % 10 }] as [string, unknown]);
    const expected = hits.reduce((s, [, h]) => s + (h as { n: number }).n, 0);
    // Input keeps arriving (200 hits every 50 ms) while the first run is killed 300 ms after its first
    // completed checkpoint: windows are open, and output after that checkpoint is not committed. The last
    // 2,000 wait for the kill, so that input still arrives after it however long the first checkpoint took
    // (with other test files sharing the cores, all 12,000 were once published before it).
    let published = 0;
    let firstEnded = false;
    const publishing = (async () => {
      await publishAll(nc, hits.slice(0, 2000));
      for (published = 2000; published < hits.length; published += 200) {
        while (published >= hits.length - 2000 && !firstEnded) await new Promise((r) => setTimeout(r, 50));
        await publishAll(nc, hits.slice(published, published + 200));
        await new Promise((r) => setTimeout(r, 50));
      }
    })();
    const first = await runJob(nats.url, env, 300, JOB, { nc, job: `pw-${p}` }).finally(() => { firstEnded = true; });
    assert.ok(first.killed, `the first run was killed (exit ${first.code}): ${first.stderr.slice(-400)}`);
    assert.ok(published < hits.length, `killed while input still arrived (${published} of ${hits.length} published)`);
    await publishing;
    second = startWeir(["run", JOB, "--nats", nats.url], { env });
    const sum = async () => (await readStream<WindowSum>(nc, `${P}_OUT`)).reduce((s, w) => s + w.n, 0);
    await eventually("the output's sums reach the input's", 120_000, async () => ((await sum()) >= expected ? true : undefined));
    const stopped = await runWeir(["stop", `pw-${p}`, "--nats", nats.url]);
    assert.is(stopped.code, 0, `${stopped.stderr}; the job: ${second.stderr().slice(-600)}`);
    const end = await second.exited;
    assert.match(end.stderr, /restoring from checkpoint \d+/);
    assert.is(await sum(), expected, "every record counted once");
  } finally {
    second?.child.kill("SIGKILL");
    await nc.close();
  }
});

crash.run();
