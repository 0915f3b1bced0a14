// Closing an environment while its job is still starting (`executeAsWorker()`: electing a leader, opening
// checkpoints, deploying) ends both: close() resolves, and the start settles (rejected, or started and
// then stopped), never left pending with the lease retrying on a closed connection.
import { suite } from "uvu";
import * as assert from "uvu/assert";
import * as t from "io-ts";
import { Sources, StreamEnvironment, valueState, type SinkDef } from "../mod.ts";
import { withServer } from "./helpers/nats-server.ts";
import { within } from "./helpers/cli.ts";

const test = suite("closing while the job starts");
const nats = withServer(test);
const count = valueState("count", t.number);
const discard = (): SinkDef<unknown> => ({ kind: "discard", createWriter: async () => ({ write: () => {}, flush: async () => {}, close: async () => {} }) });

test("env.close() at 0, 300 and 600 ms into executeAsWorker(): close resolves and the start settles", async () => {
  for (const delay of [0, 300, 600]) {
    const env = StreamEnvironment.create({ name: `startcancel${delay}`, nats: nats.url, parallelism: 1, checkpointIntervalMs: 200, stateBackend: "heap" }, { log: () => {} });
    env.fromSource(Sources.generator({ count: 1_000_000_000, make: (i) => ({ k: `k${i % 10}` }) })).keyBy((e) => e.k)
      .process<number>({ async processElement(e, ctx) { const n = ((await ctx.state(count).value()) ?? 0) + 1; await ctx.state(count).update(n); ctx.collect(n); } })
      .sinkTo(discard());
    const started = env.executeAsWorker().then(() => "started", (e: Error) => `rejected: ${e.message}`);
    await new Promise((r) => setTimeout(r, delay));
    const closed = await within(env.close().then(() => "closed"), 20_000);
    assert.is(closed, "closed", `${delay} ms: close() resolves`);
    const outcome = await within(started, 15_000);
    assert.ok(outcome !== undefined, `${delay} ms: the start settles (it was left pending)`);
  }
});

test.run();
