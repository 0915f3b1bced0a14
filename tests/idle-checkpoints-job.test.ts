// A job at rest stops taking periodic checkpoints (checkpointIntervalWhileIdleMs 0: none at all) and
// takes them again as soon as input comes, so exactly-once output committed at checkpoints is not held
// back. Real nats-server; the job reads a JetStream stream and keeps keyed counts.
import { suite } from "uvu";
import * as assert from "uvu/assert";
import * as t from "io-ts";
import { connect, type NatsConnection } from "@nats-io/transport-node";
import { Sinks, Sources, StreamEnvironment, valueState } from "../mod.ts";
import { withServer } from "./helpers/nats-server.ts";
import { eventually, runWeir } from "./helpers/cli.ts";
import { createStream, publishAll, readStream } from "./helpers/streams.ts";

const test = suite("checkpoints of a job at rest");
const nats = withServer(test);
let nc: NatsConnection;
test.before(async () => { nc = await connect({ servers: nats.url }); });
test.after(async () => { await nc?.close(); });

const count = valueState("count", t.number);
const Event = t.type({ k: t.string });

test("skipped while nothing happens, taken again when input comes; output exact", async () => {
  await createStream(nc, "IDLE_IN", ["idle.in"]);
  const env = StreamEnvironment.create({ name: "idlejob", nats: nats.url, parallelism: 2, stateBackend: "heap", checkpointIntervalMs: 50, checkpointIntervalWhileIdleMs: 0 }, { log: () => {} });
  try {
    env.fromSource(Sources.jetstream({ stream: "IDLE_IN", subjects: ["idle.in"], codec: Event }), { name: "in" })
      .keyBy((e) => e.k)
      .process({
        async processElement(e, c) {
          const n = ((await c.state(count).value()) ?? 0) + 1;
          await c.state(count).update(n);
          c.collect({ k: e.k, n });
        },
      }, { name: "count" })
      .sinkTo(Sinks.jetstream({ stream: "IDLE_OUT", subject: "idle.out" }), { name: "out" });
    const client = await env.executeAsync();
    const outputs = async (n: number) => eventually(`${n} outputs`, 60_000, async () => {
      const out = await readStream<{ k: string; n: number }>(nc, "IDLE_OUT");
      return out.length >= n ? out : undefined;
    });
    const checkpoints = () => client.status().checkpoints!;

    await publishAll(nc, Array.from({ length: 20 }, (_, i): [string, unknown] => ["idle.in", { k: `k${i % 4}` }]));
    await outputs(20);
    // At rest: a quiet checkpoint completes, then the due ones are skipped and none is taken.
    const rest = await eventually("10 checkpoints skipped", 60_000, () => ((checkpoints().skipped ?? 0) >= 10 ? checkpoints() : undefined));
    await eventually("10 more skipped", 60_000, () => ((checkpoints().skipped ?? 0) >= rest.skipped! + 10 ? true : undefined));
    assert.is(checkpoints().completed, rest.completed, "no checkpoint while at rest");
    assert.is(checkpoints().inFlight, undefined);
    const shown = await runWeir(["status", "idlejob", "--nats", nats.url]);
    assert.match(shown.stdout, new RegExp(`checkpoints: ${rest.completed} completed, 0 aborted, \\d+ skipped at rest`), shown.stdout + shown.stderr);

    // Input again: the first record tells the coordinator, and the output of the next checkpoint appears.
    await publishAll(nc, Array.from({ length: 8 }, (_, i): [string, unknown] => ["idle.in", { k: `k${i % 4}` }]));
    const out = await outputs(28);
    assert.ok(checkpoints().completed > rest.completed);
    assert.is(out.length, 28, "each record's output once");
    const last = new Map(out.map((o) => [o.k, o.n]));
    assert.equal([...last.entries()].sort(), [["k0", 7], ["k1", 7], ["k2", 7], ["k3", 7]], "the counts went on from the state of before the rest");
    await client.cancel();
  } finally {
    await env.close();
  }
});

test.run();
