// Restart strategies on a real server: a user function that fails once every N records (a different
// record each time, so every attempt gets further) keeps the job restarting past 3 failures when the
// failures are spread out, and ends it when they come too fast. Spread out / too fast is decided by the
// restart delay itself (each failure comes at least `delayMs` after the previous one), not by timing.
import { suite } from "uvu";
import * as assert from "uvu/assert";
import * as t from "io-ts";
import { connect, type NatsConnection } from "@nats-io/transport-node";
import { withServer } from "./helpers/nats-server.ts";
import { eventually, within } from "./helpers/cli.ts";
import { createStream, publishAll, readStream } from "./helpers/streams.ts";
import { StreamEnvironment } from "../runtime/api/environment.ts";
import { Sources } from "../runtime/sources/mod.ts";
import { Sinks } from "../runtime/sinks/mod.ts";
import type { JobOptions } from "../runtime/api/options.ts";

const s = suite("restart strategies (real server)");
const server = withServer(s);
let nc: NatsConnection;
const RECORDS = 3000;
const EVERY = 500; // failures at ids 500, 1000, ..., 2500: five of them
s.before(async () => {
  nc = await connect({ servers: server.url });
  await createStream(nc, "RS_IN", ["rs.in"]);
  await publishAll(nc, Array.from({ length: RECORDS }, (_, i) => ["rs.in", { id: i }] as [string, unknown]));
});
s.after(async () => { await nc?.close(); });

async function runJob(name: string, restartStrategy: JobOptions["restartStrategy"]): Promise<{ restarts: number; recordsIn?: number; error?: string }> {
  const failed = new Set<number>();
  const e = StreamEnvironment.create({ name, nats: server.url, stateBackend: "heap", parallelism: 1, mode: "streaming", checkpointIntervalMs: 100, ...(restartStrategy ? { restartStrategy } : {}) });
  e.fromSource(Sources.jetstream({ stream: "RS_IN", subjects: ["rs.in"], codec: t.type({ id: t.number }), bounded: true }), { name: "in" })
    .map((r) => {
      if (r.id > 0 && r.id % EVERY === 0 && !failed.has(r.id)) { failed.add(r.id); throw new Error(`boom at ${r.id}`); }
      return r;
    }, { name: "flaky" })
    .sinkTo(Sinks.jetstream({ stream: `${name}_OUT`, subject: `${name}.out` }), { name: "out" });
  try {
    const result = await e.execute();
    return { restarts: result.status.restarts, recordsIn: result.status.recordsIn };
  } catch (err) {
    return { restarts: failed.size - 1, error: (err as Error).message };
  } finally {
    await e.close();
  }
}

s("failure-rate: failures spread out (one per window) restart 5 times and the job completes exactly once", async () => {
  const r = await runJob("rsspread", { type: "failure-rate", maxFailures: 1, intervalMs: 200, delayMs: 300 });
  assert.is(r.error, undefined);
  assert.is(r.restarts, 5);
  // Every deployment's reads count (the first ones read at least up to their failing record), not the last one's alone.
  assert.ok((r.recordsIn ?? 0) > RECORDS, `records in over the whole run, replays included: ${r.recordsIn}`);
  const out = await readStream<{ id: number }>(nc, "rsspread_OUT");
  assert.equal(out.map((o) => o.id).sort((a, b) => a - b), Array.from({ length: RECORDS }, (_, i) => i));
});

s("failure-rate: too many failures in the window end the job", async () => {
  const r = await runJob("rsfast", { type: "failure-rate", maxFailures: 2, intervalMs: 600_000, delayMs: 0 });
  assert.match(r.error ?? "", /boom at 1500/);
  assert.is(r.restarts, 2);
});

s("exponential-delay: the backoff resets after a quiet period, so isolated failures restart forever", async () => {
  const r = await runJob("rsexp", { type: "exponential-delay", initialDelayMs: 300, resetThresholdMs: 200, attemptsBeforeReset: 1, jitter: 0 });
  assert.is(r.error, undefined);
  assert.is(r.restarts, 5);
});

s("exponential-delay: restarts in a row without a quiet period end the job", async () => {
  const r = await runJob("rsexpfast", { type: "exponential-delay", initialDelayMs: 10, resetThresholdMs: 600_000, attemptsBeforeReset: 3 });
  assert.match(r.error ?? "", /boom at 2000/);
  assert.is(r.restarts, 3);
});

// Nothing runs while the job waits out its restart delay (10 minutes here): the stop ends it there and then,
// stopped, with the failure it was recovering from, instead of restarting it to stop it.
s("a failing job waiting to restart: its ended subtasks count no busy time; a stop ends it stopped at once, naming its failure, never restarted", async () => {
  const e = StreamEnvironment.create({ name: "rsstop", nats: server.url, stateBackend: "heap", parallelism: 1, mode: "streaming", checkpointIntervalMs: 100, restartStrategy: { type: "fixed-delay", attempts: 100, delayMs: 600_000 } });
  e.fromSource(Sources.jetstream({ stream: "RS_IN", subjects: ["rs.in"], codec: t.type({ id: t.number }), bounded: true }), { name: "in" })
    .map((r): { id: number } => { throw new Error(`always failing at ${r.id}`); }, { name: "failing" })
    .sinkTo(Sinks.jetstream({ stream: "rsstop_OUT", subject: "rsstop.out" }), { name: "out" });
  try {
    const client = await e.executeAsync();
    await eventually("the job fails and waits to restart", 30_000, () => (client.status().state === "failing" && client.status().nextRestartAt !== undefined ? true : undefined));
    // Its ended subtasks' time stops: they do not count as busy while the job waits (the dashboard showed 100%).
    const busy = () => client.status().subtasks.map((x) => `${x.id} ${x.state} busy ${x.busyMs}`);
    const busyThen = busy();
    await new Promise((r) => setTimeout(r, 1500));
    assert.equal(busy(), busyThen);
    const restartsBefore = client.status().restarts;
    const outcome = await within(client.stop().then((r) => `${r.state}: ${r.failure}`, (err: Error) => `failed: ${err.message}`), 60_000);
    assert.match(outcome ?? "still waiting to restart after 60 s", /^stopped: .*always failing at 0/);
    assert.is(client.status().restarts, restartsBefore, "not restarted after the stop");
  } finally {
    await e.close();
  }
});

s.run();
