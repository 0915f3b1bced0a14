// A job whose checkpoint store disappears under it (its bucket's stream deleted; a server that lost its
// JetStream store while down looks the same): periodic checkpoints fail with "stream not found" from then
// on. Once that lasts STORE_GONE_MS the job fails, saying its checkpoint store is gone, instead of running
// on and looking healthy while no checkpoint (and no exactly-once commit) can ever complete again.
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { connect, type NatsConnection } from "@nats-io/transport-node";
import { jetstreamManager } from "@nats-io/jetstream";
import { withServer } from "./helpers/nats-server.ts";
import { within } from "./helpers/cli.ts";
import { StreamEnvironment } from "../runtime/api/environment.ts";
import { Sources } from "../runtime/sources/mod.ts";
import { Sinks } from "../runtime/sinks/mod.ts";
import { JobNames } from "../runtime/core/names.ts";
import { CheckpointStoreLoss, STORE_GONE_MS } from "../actors/checkpoint/store-loss.ts";

const s = suite("checkpoint store lost");
const nats = withServer(s);
let nc: NatsConnection;
s.before(async () => { nc = await connect({ servers: nats.url }); });
s.after(async () => { await nc.close(); });

s("the store stays missing for STORE_GONE_MS: then, not before, the job is failed; a completed checkpoint or another error starts over", () => {
  let now = 0;
  const gone: string[] = [];
  const loss = new CheckpointStoreLoss("j", () => now, () => {}, (e) => gone.push(e.message));
  const notFound = new Error("reserving ids in the checkpoint bucket failed: stream not found");
  assert.is(loss.failed(notFound), undefined);
  now += STORE_GONE_MS - 1;
  assert.is(loss.failed(notFound), undefined, "not yet");
  loss.completed();
  now += 2;
  assert.is(loss.failed(notFound), undefined, "a completed checkpoint started the count over");
  now += STORE_GONE_MS;
  assert.is(loss.failed(new Error("timeout")), undefined, "another error is no evidence of a lost store");
  assert.is(loss.failed(notFound), undefined);
  now += STORE_GONE_MS;
  assert.match(loss.failed(notFound)?.message ?? "", /checkpoints of job j cannot be stored: its checkpoint store is gone \(2 checkpoints in a row over 10 s failed: .*stream not found\)/);
});

s("its checkpoint bucket deleted under a running job: the job fails, naming the lost store, instead of running on", async () => {
  const name = "storeloss";
  const e = StreamEnvironment.create({ name, nats: nats.url, stateBackend: "heap", parallelism: 1, checkpointIntervalMs: 200, restartStrategy: { type: "fixed-delay", attempts: 1, delayMs: 100 } }, { log: () => {} });
  e.fromSource(Sources.generator({ ratePerSec: 200, make: (i) => ({ i }) }), { name: "gen" }).sinkTo(Sinks.nats({ subject: "storeloss.out" }), { name: "out" });
  try {
    const client = await e.executeAsync();
    const until = Date.now() + 30_000;
    while ((client.status().checkpoints?.completed ?? 0) < 2 && Date.now() < until) await new Promise((r) => setTimeout(r, 50));
    assert.ok((client.status().checkpoints?.completed ?? 0) >= 2, "checkpoints complete at first");
    await (await jetstreamManager(nc)).streams.delete(`KV_${new JobNames(name).checkpointBucket}`);
    const outcome = await within(client.result().then(() => "ended without a failure", (err: Error) => err.message), 90_000);
    assert.ok(outcome !== undefined, "still running 90 s after its checkpoint store was deleted");
    assert.match(outcome!, /stream not found|checkpoint store is gone/, outcome);
    assert.ok(client.status().failures.some((f) => /its checkpoint store is gone/.test(f.error)), JSON.stringify(client.status().failures));
  } finally {
    await e.close();
  }
});

s.run();
