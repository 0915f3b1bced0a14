// Count windows across a savepoint and a change of parallelism: windows half full when the job stops at
// parallelism 2 are completed by the run resumed at 3 (their records and counts are keyed state, moving
// with their key groups); the output equals that of one uninterrupted run.
import { test } from "uvu";
import * as assert from "uvu/assert";
import * as t from "io-ts";
import { connect, type NatsConnection } from "@nats-io/transport-node";
import { Sinks, Sources, StreamEnvironment, type JobClient } from "../mod.ts";
import { withServer } from "./helpers/nats-server.ts";
import { createStream, publishAll, readStream } from "./helpers/streams.ts";

const nats = withServer(test);
const Event = t.type({ id: t.number, key: t.string });
type Event = t.TypeOf<typeof Event>;
const KEYS = 7;
const SIZE = 4;

function job(parallelism: number): StreamEnvironment {
  const env = StreamEnvironment.create({ name: "countwinrescale", nats: nats.url, parallelism, checkpointIntervalMs: 200, stateBackend: "jetstream-kv" }, { log: () => {} });
  env.fromSource(Sources.jetstream({ stream: "CWEV", subjects: ["cwev.a", "cwev.b"], codec: Event }), { uid: "events" })
    .keyBy((e) => e.key)
    .countWindow(SIZE)
    .process<{ key: string; ids: number[] }>({ process(key, _w, records, out) { out.collect({ key, ids: records.map((r) => r.id) }); } }, { uid: "windows" })
    .sinkTo(Sinks.jetstream({ stream: "CWOUT", subject: (o) => `cwout.${o.key}` }), { uid: "out" });
  return env;
}

async function untilConsumed(client: JobClient, total: number): Promise<void> {
  const deadline = Date.now() + 60_000;
  while (client.status().recordsIn < total) {
    if (Date.now() > deadline) throw new Error(`only ${client.status().recordsIn} of ${total} records read`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** Publishes events [from, to), runs the job at `parallelism` until it read them, then stops it with a savepoint. */
async function phase(nc: NatsConnection, parallelism: number, events: Event[], from: number, to: number): Promise<void> {
  await publishAll(nc, events.slice(from, to).map((e) => [`cwev.${e.id % 2 === 0 ? "a" : "b"}`, e] as [string, unknown]));
  const env = job(parallelism);
  try {
    const client = await env.executeAsync();
    await untilConsumed(client, to - from);
    assert.is((await client.stop({ savepoint: true })).state, "stopped");
  } finally {
    await env.close();
  }
}

test("count windows half full at a savepoint (parallelism 2) are completed after resuming at 3", async () => {
  const nc = await connect({ servers: nats.url });
  try {
    await createStream(nc, "CWEV", ["cwev.*"]);
    // 7 keys, 30 records each: every key has windows open when the first run stops after 101 records.
    const events: Event[] = Array.from({ length: KEYS * 30 }, (_, id) => ({ id, key: `k${id % KEYS}` }));
    await phase(nc, 2, events, 0, 101);
    await phase(nc, 3, events, 101, events.length);
    const out = await readStream<{ key: string; ids: number[] }>(nc, "CWOUT");
    // Per key, its records in groups of 4 by arrival (a subject's order; ids of one key alternate subjects,
    // so compare the sets of ids each window holds, in order of their smallest id).
    for (let k = 0; k < KEYS; k++) {
      const key = `k${k}`;
      const windows = out.filter((o) => o.key === key).map((o) => [...o.ids].sort((a, b) => a - b));
      assert.is(windows.length, Math.floor(30 / SIZE), `${key}: every full window fired once`);
      assert.ok(windows.every((w) => w.length === SIZE), `${key}: ${JSON.stringify(windows)}`);
      const ids = windows.flat().sort((a, b) => a - b);
      assert.is(new Set(ids).size, ids.length, `${key}: no record in two windows`);
      assert.is(ids.length, Math.floor(30 / SIZE) * SIZE);
    }
  } finally {
    await nc.close();
  }
});

test.run();
