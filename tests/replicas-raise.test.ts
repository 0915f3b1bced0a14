// Raising `natsReplicas` between runs on a three-node cluster: what the first run wrote at one replica
// (keyed state, its changelog, checkpoints, staged output, and the output stream Sinks.jetstream created)
// is moved to three replicas, keeping its messages, and the job goes on from its checkpoint. The jobs'
// shared status bucket is raised too (never lowered).
import { suite } from "uvu";
import * as assert from "uvu/assert";
import * as t from "io-ts";
import { connect } from "@nats-io/transport-node";
import { jetstreamManager } from "@nats-io/jetstream";
import { Sinks, Sources, StreamEnvironment, valueState } from "../mod.ts";
import { startCluster } from "./helpers/nats-cluster.ts";

const test = suite("raising natsReplicas");
const count = valueState("count", t.number);

async function runOnce(url: string, replicas: number, words: string[], uid: string): Promise<string> {
  const env = StreamEnvironment.create({ name: "raise", nats: url, parallelism: 1, natsReplicas: replicas, checkpointIntervalMs: 200, stateBackend: "jetstream-kv", allowNonRestoredState: true }, { log: () => {} });
  try {
    env.fromSource(Sources.array(words), { uid }).keyBy((w) => w)
      .process<string>({ async processElement(w, ctx) { const n = ((await ctx.state(count).value()) ?? 0) + 1; await ctx.state(count).update(n); ctx.collect(`${w}${n}`); } }, { uid: "count" })
      .sinkTo(Sinks.jetstream({ stream: "RAISE_OUT", subject: (s) => `raise.out.${s}` }), { uid: "out" });
    return (await env.execute()).state;
  } finally {
    await env.close();
  }
}

test("a second run at natsReplicas 3 moves the first run's streams to three replicas and continues its counts", async () => {
  const cluster = await startCluster(3);
  try {
    const url = cluster.urls.join(",");
    assert.is(await runOnce(url, 1, ["a", "b", "a"], "words-1"), "finished");
    assert.is(await runOnce(url, 3, ["a", "c"], "words-2"), "finished");
    const nc = await connect({ servers: [...cluster.urls] });
    try {
      const jsm = await jetstreamManager(nc);
      const replicas: Record<string, number> = {};
      for await (const s of jsm.streams.list()) replicas[s.config.name] = s.config.num_replicas;
      for (const name of ["KV_weir_raise_state", "weir_raise_changelog", "KV_weir_raise_ckpt", "weir_raise_staging", "RAISE_OUT", "KV_weir_jobs"]) {
        assert.is(replicas[name], 3, `${name} has three replicas (${JSON.stringify(replicas)})`);
      }
      const out: string[] = [];
      const info = await jsm.streams.info("RAISE_OUT");
      for (let seq = info.state.first_seq; seq <= info.state.last_seq; seq++) out.push((await jsm.streams.getMessage("RAISE_OUT", { seq }))!.json<string>());
      assert.equal(out.sort(), ["a1", "a2", "a3", "b1", "c1"], "the second run counted on from the first run's state");
    } finally {
      await nc.close();
    }
  } finally {
    await cluster.stop();
  }
});

test.run();
