// Every checkpoint the job retains (checkpointsRetained) can be restored by id, not only the latest: on
// the heap backend a completed checkpoint used to delete the snapshots of the ones before it, so
// `--restore <an older retained id>` failed on a missing changelog message. (The KV backend keeps one
// version of the state: there only the latest can be restored, README "Known gaps".)
import { suite } from "uvu";
import * as assert from "uvu/assert";
import * as t from "io-ts";
import { connect, type NatsConnection } from "@nats-io/transport-node";
import { Sinks, Sources, StreamEnvironment, valueState, type JobOptions } from "../mod.ts";
import { withServer } from "./helpers/nats-server.ts";
import { createStream, publishAll, readStream } from "./helpers/streams.ts";
import { eventually } from "./helpers/cli.ts";

const test = suite("restoring a retained checkpoint");
const nats = withServer(test);
const KEYS = 4;
const PER_PHASE = 40;
const count = valueState("count", t.number);
const Event = t.type({ id: t.number, key: t.string });

function job(options: Partial<JobOptions>, out: string, bounded: boolean): StreamEnvironment {
  const env = StreamEnvironment.create({ name: "retained", nats: nats.url, parallelism: 2, mode: "streaming", stateBackend: "heap", checkpointIntervalMs: 600_000, checkpointsRetained: 10, ...options }, { log: () => {} });
  env.fromSource(Sources.jetstream({ stream: "RET_IN", subjects: ["ret.in"], codec: Event, bounded }), { uid: "in" })
    .keyBy((e) => e.key)
    .process<{ key: string; n: number }>({
      async processElement(e, ctx) {
        const n = ((await ctx.state(count).value()) ?? 0) + 1;
        await ctx.state(count).update(n);
        ctx.collect({ key: e.key, n });
      },
    }, { uid: "count" })
    .sinkTo(Sinks.jetstream({ stream: out, subject: `${out.toLowerCase()}.out` }), { uid: "out" });
  return env;
}

const phase = (p: number) => Array.from({ length: PER_PHASE }, (_, i) => ["ret.in", { id: p * PER_PHASE + i, key: `k${i % KEYS}` }] as [string, unknown]);

test("heap backend: three checkpoints of one run, each with other state; the oldest and the middle one restore by id", async () => {
  const nc: NatsConnection = await connect({ servers: nats.url });
  try {
    await createStream(nc, "RET_IN", ["ret.in"]);
    const env = job({}, "RET_A", false);
    const ids: number[] = [];
    try {
      const client = await env.executeAsync();
      for (const p of [0, 1, 2]) {
        await publishAll(nc, phase(p));
        // The exactly-once sink publishes at checkpoints: once all of the phase is out, that checkpoint holds it.
        ids.push(await eventually(`phase ${p} in a checkpoint`, 60_000, async () => {
          const id = await client.triggerCheckpoint();
          return (await readStream(nc, "RET_A")).length === (p + 1) * PER_PHASE ? id : undefined;
        }));
      }
      await client.stop();
    } finally {
      await env.close();
    }
    for (const [i, id] of ids.slice(0, 2).entries()) {
      const out = `RET_R${i}`;
      const restored = job({ restore: id }, out, true);
      try {
        const result = await restored.execute();
        assert.is(result.state, "finished");
      } finally {
        await restored.close();
      }
      // Restored after phase i: the source goes on from there, each key's count from where phase i left it.
      const byKey = new Map<string, number[]>();
      for (const o of await readStream<{ key: string; n: number }>(nc, out)) byKey.set(o.key, [...(byKey.get(o.key) ?? []), o.n]);
      const perKey = PER_PHASE / KEYS;
      for (let k = 0; k < KEYS; k++) {
        const expected = Array.from({ length: (2 - i) * perKey }, (_, j) => (i + 1) * perKey + j + 1);
        assert.equal((byKey.get(`k${k}`) ?? []).sort((a, b) => a - b), expected, `checkpoint ${id} (after phase ${i}): key k${k}`);
      }
    }
  } finally {
    await nc.close();
  }
});

test.run();
