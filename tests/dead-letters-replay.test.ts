// A restart replays the records after its checkpoint: the dead letters of the malformed ones among them
// are stored once (Nats-Msg-Id from stream + sequence), and `deadLetters` counts each once.
import { suite } from "uvu";
import * as assert from "uvu/assert";
import * as t from "io-ts";
import { connect, type NatsConnection } from "@nats-io/transport-node";
import { jetstreamManager } from "@nats-io/jetstream";
import { withServer } from "./helpers/nats-server.ts";
import { eventually, within } from "./helpers/cli.ts";
import { createStream, publishAll } from "./helpers/streams.ts";
import { StreamEnvironment } from "../runtime/api/environment.ts";
import { Sources } from "../runtime/sources/mod.ts";
import { Sinks } from "../runtime/sinks/mod.ts";
import { DEAD_LETTER_DUPLICATE_WINDOW_MS } from "../actors/subtask/dead-letters.ts";

const s = suite("dead letters across a replay");
const server = withServer(s);
let nc: NatsConnection;
s.before(async () => { nc = await connect({ servers: server.url }); });
s.after(async () => { await nc?.close(); });

const BAD = 4;
const good = (from: number, to: number) => Array.from({ length: to - from }, (_, i) => ["dr.in", { id: from + i }] as [string, unknown]);

s("a job restarted from a checkpoint before its malformed records stores each dead letter once", async () => {
  await createStream(nc, "DR_IN", ["dr.in"]);
  await publishAll(nc, good(0, 50));
  let failedOnce = false;
  let seenLast = 0;
  // No periodic checkpoint (interval far off): the only ones are triggered below, so the restart's is known.
  const env = StreamEnvironment.create({
    name: "drjob", nats: server.url, stateBackend: "heap", parallelism: 1, mode: "streaming", checkpointIntervalMs: 600_000,
    restartStrategy: { type: "fixed-delay", attempts: 3, delayMs: 200 },
  });
  env.fromSource(Sources.jetstream({ stream: "DR_IN", subjects: ["dr.in"], codec: t.type({ id: t.number }) }), { name: "in" })
    .map((r) => {
      if (r.id === 99) {
        seenLast++;
        if (!failedOnce) { failedOnce = true; throw new Error("boom after the malformed records"); }
      }
      return r;
    }, { name: "flaky" })
    .sinkTo(Sinks.jetstream({ stream: "DR_OUT", subject: "dr.out" }), { name: "out" });
  try {
    const client = await env.executeAsync();
    await eventually("the first 50 records read", 60_000, () => (client.status().recordsIn >= 50 ? true : undefined));
    const before = await within(client.triggerCheckpoint(), 60_000);
    assert.ok(before !== undefined, "the checkpoint before the malformed records did not complete within 60 s");
    await publishAll(nc, [...Array.from({ length: BAD }, (_, i) => ["dr.in", `{"id": broken ${i}`] as [string, unknown]), ...good(50, 100)]);
    await eventually("the restarted job reads the last record again", 60_000, () => (seenLast >= 2 && client.status().state === "running" ? true : undefined));
    assert.is(client.status().restarts, 1);
    // A checkpoint is acknowledged only once the dead letters before it are stored.
    await eventually("a checkpoint after the replay", 60_000, () => within(client.triggerCheckpoint().then(() => true, () => undefined), 30_000));
    const info = await (await jetstreamManager(nc)).streams.info("weir_drjob_dlq");
    assert.is(info.state.messages, BAD, `dead letters stored: ${info.state.messages}`);
    assert.is(info.config.duplicate_window, DEAD_LETTER_DUPLICATE_WINDOW_MS * 1_000_000);
    assert.is(client.status().deadLetters, BAD);
    await within(client.stop(), 60_000);
  } finally {
    await env.close();
  }
});

s.run();
