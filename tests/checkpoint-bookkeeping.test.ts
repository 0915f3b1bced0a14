// Checkpoint bookkeeping is O(1) per checkpoint: after hundreds of checkpoints at a short interval, the
// checkpoint bucket's stream has no pile of listing consumers and holds only the retained checkpoints
// (no delete/purge markers), and the changelog and staging streams do not grow with the checkpoints.
import { suite } from "uvu";
import * as assert from "uvu/assert";
import * as t from "io-ts";
import { connect, type NatsConnection } from "@nats-io/transport-node";
import { jetstreamManager } from "@nats-io/jetstream";
import { withServer } from "./helpers/nats-server.ts";
import { StreamEnvironment } from "../runtime/api/environment.ts";
import { Sources } from "../runtime/sources/mod.ts";
import { Sinks } from "../runtime/sinks/mod.ts";
import { valueState } from "../state/mod.ts";
import { ConnectorNames, JobNames } from "../runtime/core/names.ts";
import { CheckpointStore } from "../runtime/checkpoint/store.ts";

const s = suite("checkpoint bookkeeping");
const server = withServer(s);
let nc: NatsConnection;
s.before(async () => { nc = await connect({ servers: server.url }); });
s.after(async () => { await nc?.close(); });

const count = valueState("count", t.number);

interface Sizes { ckptMessages: number; ckptConsumers: number; changelog: number; staging: number }

async function sizes(job: string): Promise<Sizes> {
  const jsm = await jetstreamManager(nc);
  const names = new JobNames(job);
  const info = async (stream: string) => (await jsm.streams.info(stream).catch(() => undefined))?.state.messages ?? 0;
  const ckpt = await jsm.streams.info(`KV_${names.checkpointBucket}`);
  return {
    ckptMessages: ckpt.state.messages,
    ckptConsumers: ckpt.state.consumer_count,
    changelog: await info(names.changelogStream),
    staging: await info(new ConnectorNames(names).stagingStream),
  };
}

s("200 checkpoints at 20 ms: few consumers, bounded streams", async () => {
  const job = "bookkeep";
  const e = StreamEnvironment.create({ name: job, nats: server.url, parallelism: 2, mode: "streaming", checkpointIntervalMs: 20, checkpointsRetained: 3 });
  e.fromSource(Sources.generator({ ratePerSec: 2000, make: (i) => ({ k: `k${i % 50}`, i }) }), { name: "gen" })
    .keyBy((r) => r.k)
    .process({
      async processElement(r, ctx) {
        const n = ((await ctx.state(count).value()) ?? 0) + 1;
        await ctx.state(count).update(n);
        if (r.i % 100 === 0) ctx.collect({ k: r.k, n });
      },
    }, { name: "count" })
    .sinkTo(Sinks.jetstream({ stream: "BK_OUT", subject: "bk.out" }), { name: "out" });
  const client = await e.executeAsync();
  const samples: Array<Sizes & { completed: number }> = [];
  try {
    for (const target of [50, 200]) {
      const deadline = Date.now() + 180_000;
      for (;;) {
        const completed = client.status().checkpoints?.completed ?? 0;
        if (completed >= target) { samples.push({ ...(await sizes(job)), completed }); break; }
        if (Date.now() > deadline) throw new Error(`only ${completed} checkpoints completed`);
        await new Promise((r) => setTimeout(r, 100));
      }
    }
    // The changelog keeps the deltas since state was last materialized into KV (every
    // materializeIntervalMs, 10 s by default), then drops them: it falls back, whatever the count.
    const deadline = Date.now() + 120_000;
    for (;;) {
      const now = await sizes(job);
      if (now.changelog <= samples[0]!.changelog) { samples.push({ ...now, completed: client.status().checkpoints?.completed ?? 0 }); break; }
      if (Date.now() > deadline) throw new Error(`the changelog stream kept growing: ${samples[0]!.changelog} → ${now.changelog}`);
      await new Promise((r) => setTimeout(r, 200));
    }
  } finally {
    await client.cancel();
    await e.close();
  }
  console.log(JSON.stringify(samples));
  const [early, late, settled] = samples as Array<Sizes & { completed: number }> as [Sizes & { completed: number }, Sizes & { completed: number }, Sizes & { completed: number }];
  // Retained: 3 checkpoints × (head + one part) + latest + ids, plus the one being written.
  assert.ok(late.ckptMessages <= 12, `ckpt stream holds ${late.ckptMessages} messages after ${late.completed} checkpoints`);
  // Listing the checkpoints reads the stream's subjects: no consumer (a KV key listing left one for minutes).
  assert.is(late.ckptConsumers, 0, `${late.ckptConsumers} consumers on the ckpt stream`);
  assert.ok(settled.ckptMessages <= 12 && settled.ckptConsumers === 0, `after ${settled.completed}: ${JSON.stringify(settled)}`);
  // The staging stream holds only what awaits the next commit.
  assert.ok(late.staging <= Math.max(early.staging * 2, 50), `staging ${early.staging} → ${late.staging}`);

  const store = await CheckpointStore.open(nc, new JobNames(job));
  const latest = await store.latest();
  assert.is(latest?.pointer.retained?.length, 3);
  assert.equal(await store.list(), latest!.pointer.retained);
  assert.is((await sizes(job)).ckptConsumers, 0, "listing leaves no consumer behind");
});

s.run();
