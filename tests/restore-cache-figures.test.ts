// After a restore, the keyed operator's state-cache figures start with the job's own reads: reading back
// the timers (one state entry per key group) is not counted as cache misses, so the hit ratio `weir status`
// shows does not start low. The timers themselves are restored (and listed as such).
import { test } from "uvu";
import * as assert from "uvu/assert";
import * as t from "io-ts";
import { connect } from "@nats-io/transport-node";
import { Sources, StreamEnvironment, valueState, type JobClient, type SinkDef } from "../mod.ts";
import { withServer } from "./helpers/nats-server.ts";
import { createStream, publishAll } from "./helpers/streams.ts";
import { eventually } from "./helpers/cli.ts";

const nats = withServer(test);
const seen = valueState("seen", t.number);
const discard: SinkDef<number> = { kind: "discard", createWriter: async () => ({ write: () => {}, flush: async () => {}, close: async () => {} }) };

function job(): StreamEnvironment {
  const env = StreamEnvironment.create({ name: "cachefigures", nats: nats.url, parallelism: 1, checkpointIntervalMs: 100, stateBackend: "jetstream-kv", mode: "streaming" }, { log: () => {} });
  env.fromSource(Sources.jetstream({ stream: "CFIN", subjects: ["cfin"], codec: t.number }), { uid: "in" })
    .keyBy((n: number) => n % 20)
    .process<number>({
      async processElement(n, ctx) {
        await ctx.state(seen).update(((await ctx.state(seen).value()) ?? 0) + n);
        ctx.timers.registerEventTimeTimer(1e12); // far ahead: kept, checkpointed, restored
      },
    }, { uid: "keyed", name: "keyed" })
    .sinkTo(discard, { uid: "out" });
  return env;
}

const keyedFigures = (client: JobClient) => {
  const keyed = client.status().subtasks.find((s) => s.name.includes("keyed"));
  return Object.values(keyed?.operators ?? {}).find((m) => m.cacheMisses !== undefined);
};

test("right after a restore the cache figures count no miss for the timers read back", async () => {
  const nc = await connect({ servers: nats.url });
  try {
    await createStream(nc, "CFIN", ["cfin"]);
    await publishAll(nc, Array.from({ length: 100 }, (_, i) => ["cfin", i] as [string, unknown]));
    const first = job();
    try {
      const client = await first.executeAsync();
      await eventually("100 records in", 60_000, () => (client.status().recordsIn >= 100 ? true : undefined));
      assert.is((await client.stop({ savepoint: true })).state, "stopped");
    } finally {
      await first.close();
    }
    const second = job();
    try {
      const client = await second.executeAsync();
      const figures = await eventually("the restored job running", 60_000, () => {
        const m = keyedFigures(client);
        return client.status().state === "running" && m !== undefined ? m : undefined;
      });
      assert.is(figures.restoredEventTimers, 20, "every key's timer came back");
      assert.is(client.status().recordsIn, 0, "no new input");
      assert.is(figures.cacheMisses, 0, `misses counted for the restore's own reads: ${JSON.stringify(figures)}`);
      // The job's own reads count as before: a new record's key is not cached yet, its read misses.
      await publishAll(nc, [["cfin", 7]]);
      await eventually("the new record's miss counted", 60_000, () => (keyedFigures(client)?.cacheMisses === 1 ? true : undefined));
      await client.cancel();
    } finally {
      await second.close();
    }
  } finally {
    await nc.close();
  }
});

test.run();
