// Stop with a savepoint at parallelism 2, resume at 3, savepoint again, resume at 1: keyed state follows
// its key groups (no copying), sources resume at their offsets, and the output is exactly right.
import { suite } from "uvu";
import * as assert from "uvu/assert";
import * as t from "io-ts";
import { connect, type NatsConnection } from "@nats-io/transport-node";
import { Sinks, Sources, StreamEnvironment, type JobClient } from "../mod.ts";
import { countPerKey } from "./helpers/keyed-count.ts";
import { withServer } from "./helpers/nats-server.ts";
import { createStream, publishAll, readStream } from "./helpers/streams.ts";

const rescale = suite("savepoints and rescaling");
const nats = withServer(rescale);

const Event = t.type({ id: t.number, key: t.string });

function job(parallelism: number, backend: "jetstream-kv" | "heap"): StreamEnvironment {
  const env = StreamEnvironment.create({ name: `rescale-${backend.length}`, nats: nats.url, parallelism, checkpointIntervalMs: 200, stateBackend: backend }, { log: () => {} });
  env.fromSource(Sources.jetstream({ stream: `EV${backend.length}`, subjects: [`ev${backend.length}.a`, `ev${backend.length}.b`, `ev${backend.length}.c`], codec: Event }), { uid: "events" })
    .keyBy((e) => e.key)
    .process(countPerKey, { uid: "count" })
    .sinkTo(Sinks.jetstream({ stream: `OUT${backend.length}`, subject: (o) => `out${backend.length}.${o.key}` }), { uid: "out" });
  return env;
}

async function untilConsumed(client: JobClient, total: number): Promise<void> {
  const deadline = Date.now() + 30_000;
  while (Date.now() < deadline) {
    const s = client.status();
    if (s.recordsIn >= total) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`only ${client.status().recordsIn} of ${total} records read`);
}

async function phase(nc: NatsConnection, backend: "jetstream-kv" | "heap", parallelism: number, events: Array<{ id: number; key: string }>, from: number, to: number): Promise<void> {
  const s = backend.length;
  await publishAll(nc, events.slice(from, to).map((e) => [`ev${s}.${["a", "b", "c"][e.id % 3]}`, e] as [string, unknown]));
  const env = job(parallelism, backend);
  try {
    const client = await env.executeAsync();
    // Records read in this run: the source resumes after the savepoint's offsets.
    await untilConsumed(client, to - from);
    const result = await client.stop({ savepoint: true });
    assert.is(result.state, "stopped");
    assert.is(result.status.recordsIn, to - from, `parallelism ${parallelism} read exactly the new records`);
  } finally {
    await env.close();
  }
}

for (const backend of ["jetstream-kv", "heap"] as const) {
  rescale(`savepoint at 2, resume at 3, then at 1 (${backend})`, async () => {
    const nc = await connect({ servers: nats.url });
    try {
      const s = backend.length;
      await createStream(nc, `EV${s}`, [`ev${s}.*`]);
      const events = Array.from({ length: 6000 }, (_, i) => ({ id: i, key: `k${(i * 13) % 50}` }));
      await phase(nc, backend, 2, events, 0, 2000);
      await phase(nc, backend, 3, events, 2000, 4000);
      await phase(nc, backend, 1, events, 4000, 6000);
      const out = await readStream<{ key: string; n: number }>(nc, `OUT${s}`);
      const expected = new Map<string, number>();
      for (const e of events) expected.set(e.key, (expected.get(e.key) ?? 0) + 1);
      const seen = new Map<string, number[]>();
      for (const o of out) seen.set(o.key, [...(seen.get(o.key) ?? []), o.n]);
      for (const [key, n] of expected) {
        assert.equal((seen.get(key) ?? []).sort((a, b) => a - b), Array.from({ length: n }, (_, i) => i + 1), `key ${key}`);
      }
      assert.is(out.length, events.length);
    } finally {
      await nc.close();
    }
  });
}

rescale.run();
