// Checkpoints under backpressure, on a real nats-server: a fast source feeding a sink slowed to 200
// records/s. What sits in channels and queues ahead of a barrier must drain within a checkpoint's
// timeout, or no checkpoint completes and exactly-once output stops.
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { Sources, StreamEnvironment, type JobOptions, type SinkDef } from "../mod.ts";
import { withServer } from "./helpers/nats-server.ts";

const s = suite("checkpoints under backpressure");
const nats = withServer(s);

const TIMEOUT_MS = 10_000;
const RATE = 200;

/** A sink that takes `rate` records per second overall (a write waits for its slot). */
function pacedSink(rate: number, delivered: { n: number }): SinkDef<unknown> {
  return {
    kind: "paced",
    createWriter: async () => {
      const started = performance.now();
      return {
        write: () => {
          const due = started + (++delivered.n * 1000) / rate;
          const wait = due - performance.now();
          if (wait > 1) return new Promise<void>((r) => setTimeout(r, wait));
        },
        flush: async () => {},
        close: async () => {},
      };
    },
  };
}

interface Completed { id: number; durationMs: number }

/** Runs the job until `want` checkpoints completed (or one aborted, or the deadline); returns what it saw. */
async function checkpointsUnderBackpressure(name: string, extra: Partial<JobOptions>, want: number): Promise<{ completed: Completed[]; aborted: number; lastFailure?: string; delivered: number }> {
  const env = StreamEnvironment.create({ name, nats: nats.url, parallelism: 2, stateBackend: "heap", checkpointIntervalMs: 500, checkpointTimeoutMs: TIMEOUT_MS, ...extra });
  const delivered = { n: 0 };
  env.fromSource(Sources.generator({ make: (i) => ({ user: `user-${i % 5000}`, payload: "x".repeat(100), i }) }), { name: "fast" })
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

s.run();
