// Checkpoints under backpressure, on a real nats-server: a fast source feeding a sink slowed to 200
// records/s. What sits in channels and queues ahead of a barrier must drain within a checkpoint's
// timeout, or no checkpoint completes and exactly-once output stops.
import { pacedSink } from "../bench/jobs/paced-sink.ts";
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { connect } from "@nats-io/transport-node";
import { jetstream, jetstreamManager } from "@nats-io/jetstream";
import { Sources, StreamEnvironment, type JobOptions, type SourceDef } from "../mod.ts";
import { withServer } from "./helpers/nats-server.ts";

const s = suite("checkpoints under backpressure");
const nats = withServer(s);

// A checkpoint must drain what is queued ahead of its barrier within this; the first one, before the
// debloater has measured throughput, waits on the initial buffers (over 10 s with the suite sharing the cores).
const TIMEOUT_MS = 20_000;
const RATE = 200;


interface Completed { id: number; durationMs: number }

/** Runs the job until `want` checkpoints completed (or one aborted, or the deadline); returns what it saw. */
interface Event { user: string; payload: string; i: number }
const generated = (): SourceDef<Event> => Sources.generator({ make: (i) => ({ user: `user-${i % 5000}`, payload: "x".repeat(100), i }) });

async function checkpointsUnderBackpressure(name: string, extra: Partial<JobOptions>, want: number, source: SourceDef<Event> = generated()): Promise<{ completed: Completed[]; aborted: number; lastFailure?: string; delivered: number }> {
  const env = StreamEnvironment.create({ name, nats: nats.url, parallelism: 2, stateBackend: "heap", checkpointIntervalMs: 500, checkpointTimeoutMs: TIMEOUT_MS, ...extra });
  const delivered = { n: 0 };
  env.fromSource(source, { name: "fast" })
    .keyBy((r) => r.user)
    .map((r) => r)
    .sinkTo(pacedSink(RATE, delivered), { parallelism: 1 });
  const client = await env.executeAsync();
  const completed = new Map<number, number>();
  let aborted = 0;
  let lastFailure: string | undefined;
  try {
    const deadline = Date.now() + 90_000;
    while (Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 100));
      const c = client.status().checkpoints;
      if (c?.lastCompleted) completed.set(c.lastCompleted.id, c.lastCompleted.durationMs);
      aborted = c?.aborted ?? 0;
      lastFailure = c?.lastFailure;
      if (aborted > 0 || completed.size >= want) break;
    }
  } finally {
    await client.cancel().catch(() => {});
    await env.close();
  }
  return { completed: [...completed].map(([id, durationMs]) => ({ id, durationMs })), aborted, ...(lastFailure ? { lastFailure } : {}), delivered: delivered.n };
}

s("a sink at 200 records/s under a fast source: checkpoints keep completing within their timeout", async () => {
  const r = await checkpointsUnderBackpressure("debloat-on", {}, 6);
  console.log(`  debloating on: checkpoint durations ${r.completed.map((c) => c.durationMs).join(", ")} ms; ${r.delivered} records delivered`);
  assert.is(r.aborted, 0, `no checkpoint aborted (${r.lastFailure ?? ""})`);
  assert.ok(r.completed.length >= 6, `6 checkpoints completed, saw ${r.completed.length}`);
  for (const c of r.completed) assert.ok(c.durationMs < TIMEOUT_MS, `checkpoint ${c.id} took ${c.durationMs} ms`);
});

s("the same from a JetStream stream holding a backlog: its reader hands over no more than the job takes", async () => {
  const nc = await connect({ servers: nats.url });
  try {
    const jsm = await jetstreamManager(nc);
    await jsm.streams.add({ name: "EVENTS", subjects: ["events.*"] });
    const js = jetstream(nc);
    for (let i = 0; i < 40_000; i += 1000) {
      await Promise.all(Array.from({ length: 1000 }, (_, k) => js.publish(`events.${(i + k) % 2}`, JSON.stringify({ user: `user-${(i + k) % 5000}`, payload: "x".repeat(100), i: i + k }))));
    }
  } finally {
    await nc.close();
  }
  const r = await checkpointsUnderBackpressure("debloat-js", { parallelism: 1 }, 4, Sources.jetstream<Event>({ stream: "EVENTS", subjects: ["events.0", "events.1"] }));
  console.log(`  JetStream source: checkpoint durations ${r.completed.map((c) => c.durationMs).join(", ")} ms; ${r.delivered} records delivered`);
  assert.is(r.aborted, 0, `no checkpoint aborted (${r.lastFailure ?? ""})`);
  assert.ok(r.completed.length >= 4, `4 checkpoints completed, saw ${r.completed.length}`);
  for (const c of r.completed) assert.ok(c.durationMs < TIMEOUT_MS, `checkpoint ${c.id} took ${c.durationMs} ms`);
});

s.run();
