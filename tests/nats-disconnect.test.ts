// A NATS server restart while a checkpointed job's channels are quiet loses no frame, and the job goes on
// without a restart: once the connection is back every producer probes its channels, no consumer finds a
// gap, and later input is counted on from the state the job had (each key's counts 1..n exactly once,
// checkpoints completing again). A lost frame still restarts the job (tests/channel-gaps for the probe,
// tests/nats-restart under load).
import { test } from "uvu";
import * as assert from "uvu/assert";
import * as t from "io-ts";
import { connect } from "@nats-io/transport-node";
import { jetstream, jetstreamManager } from "@nats-io/jetstream";
import { Sources, StreamEnvironment, type SinkDef } from "../mod.ts";
import { countPerKey } from "./helpers/keyed-count.ts";
import { RestartableServer } from "./helpers/nats-server.ts";
import { eventually, within } from "./helpers/cli.ts";
import { formatStatus } from "../runtime/cli/commands/control.ts";

const Event = t.type({ key: t.string });
const KEYS = ["a", "b", "c", "d", "e", "f", "g"];

test("a server restart while the channels are quiet: no job restart, counts go on exactly once", async () => {
  const server = await RestartableServer.start();
  const lines: string[] = [];
  const out: Array<{ key: string; n: number }> = [];
  const sink: SinkDef<{ key: string; n: number }> = {
    kind: "test-collect",
    createWriter: async () => ({ write: (x) => { out.push(x); }, flush: async () => {}, close: async () => {} }),
  };
  const nc = await connect({ servers: server.url, maxReconnectAttempts: -1, reconnectTimeWait: 200 });
  // Checkpoints only when the test asks: one taken during the outage would fail and blur what is tested.
  const env = StreamEnvironment.create({ name: "ride-through", nats: server.url, parallelism: 2, checkpointIntervalMs: 3_600_000 }, { log: (m) => lines.push(m) });
  try {
    await (await jetstreamManager(nc)).streams.add({ name: "IN", subjects: ["in"] });
    env.fromSource(Sources.jetstream({ stream: "IN", subjects: ["in"], codec: Event }), { uid: "events" })
      .keyBy((e) => e.key)
      .process(countPerKey, { uid: "count" })
      .sinkTo(sink, { uid: "out" });
    const client = await env.executeAsync();
    const publish = async (from: number, to: number) => {
      const js = jetstream(nc);
      for (let i = from; i < to; i++) await js.publish("in", JSON.stringify({ key: KEYS[i % KEYS.length] }));
    };
    await publish(0, 200);
    await eventually("the first 200 outputs", 60_000, () => (out.length >= 200 ? true : undefined));
    const first = await client.triggerCheckpoint();

    await server.kill();
    await eventually("the disconnect noticed", 30_000, () => (lines.some((l) => /connection to \S+ lost/.test(l)) ? true : undefined));
    // While NATS is down the job says so, still running.
    const during = client.status();
    assert.is(during.state, "running");
    assert.ok(during.natsDisconnectedSince !== undefined, "natsDisconnectedSince during the outage");
    assert.match(formatStatus(during), /^ride-through: running, NATS disconnected for \d+\.\ds/);
    await server.restart();
    await eventually("the connection back", 60_000, () => (lines.some((l) => /NATS connection back/.test(l)) ? true : undefined));
    assert.is(client.status().natsDisconnectedSince, undefined);

    await eventually("300 more records published", 60_000, () => publish(200, 500).then(() => true, () => undefined));
    await eventually("every output", 90_000, () => (out.length >= 500 ? true : undefined));
    const later = await eventually("a checkpoint after the outage", 60_000, () => client.triggerCheckpoint().then((id) => id, () => undefined));
    assert.ok(later > first, `checkpoint ${later} after ${first}`);

    const status = client.status();
    assert.is(status.restarts, 0, `the job restarted: ${lines.filter((l) => /restart|lost|gap/i.test(l)).join(" | ")}`);
    assert.is(status.state, "running");
    // Each key's counts are 1..n, each once, n its share of the 500 records.
    for (const [k, key] of KEYS.entries()) {
      const ns = out.filter((x) => x.key === key).map((x) => x.n).sort((a, b) => a - b);
      const expected = Math.floor(500 / KEYS.length) + (k < 500 % KEYS.length ? 1 : 0);
      assert.equal(ns, Array.from({ length: expected }, (_, i) => i + 1), `key ${key}`);
    }
    assert.ok(lines.some((l) => /the job goes on; once it is back, every channel between subtasks is probed/.test(l)), lines.join("\n"));
    await within(client.stop(), 30_000);
  } finally {
    await within(env.close().catch(() => {}), 30_000);
    await within(nc.close().catch(() => {}), 5000);
    await server.stop();
  }
});

test.run();
