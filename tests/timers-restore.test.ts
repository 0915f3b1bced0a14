// Timers are keyed state: event-time windows and processing-time timers registered before a savepoint
// fire after the job resumes at another parallelism (each timer on the subtask that now owns its key
// group), and after a restart from a checkpoint when a user function failed. Processing time runs on a
// ManualClock: the timers' time passes while the job is down, and they fire once it is back.
import { suite } from "uvu";
import * as assert from "uvu/assert";
import * as t from "io-ts";
import { connect, type NatsConnection } from "@nats-io/transport-node";
import { Sinks, Sources, StreamEnvironment, TumblingEventTimeWindows, WatermarkStrategy, type JobClient } from "../mod.ts";
import { ManualClock } from "../runtime/core/clock.ts";
import type { JobStatus } from "../actors/job/job-runner.ts";
import { withServer } from "./helpers/nats-server.ts";
import { createStream, publishAll, readStream } from "./helpers/streams.ts";

const restore = suite("timers across restores");
const nats = withServer(restore);

const Reading = t.type({ k: t.string, ts: t.number });
const Due = t.type({ k: t.string, due: t.number });
interface WindowCount { k: string; w: number; n: number }
interface Fired { k: string; due: number }
const SUBJECTS = ["a", "b", "c"] as const;

/** Windows counting readings per key, and a processing-time timer per (key, due); `failOnce` throws on its first call with true. */
function job(P: string, parallelism: number, backend: "jetstream-kv" | "heap", clock: ManualClock, failOnce?: (r: { k: string; ts: number }) => boolean): StreamEnvironment {
  const p = P.toLowerCase();
  const env = StreamEnvironment.create(
    { name: `timers-${p}`, nats: nats.url, parallelism, checkpointIntervalMs: 200, stateBackend: backend, restartStrategy: { attempts: 2, delayMs: 0 } },
    { log: () => {}, clock },
  );
  env.fromSource(Sources.jetstream({ stream: `${P}_W`, subjects: SUBJECTS.map((s) => `${p}w.${s}`), codec: Reading }), { uid: "readings" })
    // A watermark after every record: the periodic one runs on the (manual) processing-time clock.
    .assignTimestampsAndWatermarks(WatermarkStrategy.forMonotonousTimestamps((r: { k: string; ts: number }) => r.ts).withWatermarkPerRecord(), { uid: "stamp" })
    .map((r): WindowCount => {
      if (failOnce?.(r)) throw new Error("a user function failed once");
      return { k: r.k, w: Math.floor(r.ts / 1000) * 1000, n: 1 };
    }, { uid: "one" })
    .keyBy((c) => c.k)
    .window(TumblingEventTimeWindows.of(1000))
    .reduce((a, b) => ({ k: a.k, w: a.w, n: a.n + b.n }), { uid: "window" })
    .sinkTo(Sinks.jetstream({ stream: `${P}_OW`, subject: (c) => `${p}ow.${c.k}` }), { uid: "out-w" });
  env.fromSource(Sources.jetstream({ stream: `${P}_P`, subjects: SUBJECTS.map((s) => `${p}p.${s}`), codec: Due }), { uid: "dues" })
    .keyBy((d) => d.k)
    .process<Fired>({
      processElement(d, ctx) { ctx.timers.registerProcessingTimeTimer(d.due); },
      onTimer(due, ctx) { ctx.collect({ k: ctx.key, due }); },
    }, { uid: "remind" })
    .sinkTo(Sinks.jetstream({ stream: `${P}_OP`, subject: (f) => `${p}op.${f.k}` }), { uid: "out-p" });
  return env;
}

async function createStreams(nc: NatsConnection, P: string): Promise<void> {
  const p = P.toLowerCase();
  await createStream(nc, `${P}_W`, [`${p}w.*`]);
  await createStream(nc, `${P}_P`, [`${p}p.*`]);
  await createStream(nc, `${P}_OW`, [`${p}ow.>`]);
  await createStream(nc, `${P}_OP`, [`${p}op.>`]);
}

function metric(s: JobStatus, name: string): number {
  let n = 0;
  for (const st of s.subtasks) for (const m of Object.values(st.operators)) n += m[name] ?? 0;
  return n;
}

async function until(what: string, ok: () => boolean | Promise<boolean>, ms = 60_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    if (await ok()) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`timed out waiting for ${what}`);
}

/** Closes the windows of [0, 1000): a reading at 5000 on every subject moves every source subtask's watermark past them. */
function closeWindows(nc: NatsConnection, P: string): Promise<void> {
  const p = P.toLowerCase();
  return publishAll(nc, SUBJECTS.map((s) => [`${p}w.${s}`, { k: `close-${s}`, ts: 5000 }] as [string, unknown]));
}

/** Advances processing time until `count` timers fired into the output (they fire once the job runs again). */
async function fireProcessingTimers(nc: NatsConnection, P: string, clock: ManualClock, count: number): Promise<void> {
  await until(`${count} processing-time timers in ${P}_OP`, async () => {
    clock.advance(1000);
    return (await readStream(nc, `${P}_OP`)).length >= count;
  });
}

async function outputs(nc: NatsConnection, P: string): Promise<{ windows: WindowCount[]; fired: Fired[] }> {
  const windows = (await readStream<WindowCount>(nc, `${P}_OW`)).sort((a, b) => a.k.localeCompare(b.k));
  const fired = (await readStream<Fired>(nc, `${P}_OP`)).sort((a, b) => a.k.localeCompare(b.k) || a.due - b.due);
  return { windows, fired };
}

const sortFired = (f: Fired[]) => [...f].sort((a, b) => a.k.localeCompare(b.k) || a.due - b.due);

for (const backend of ["jetstream-kv", "heap"] as const) {
  restore(`savepoint at parallelism 2, resume at 3: windows and processing-time timers fire once (${backend})`, async () => {
    const P = backend === "heap" ? "SH" : "SK";
    const p = P.toLowerCase();
    const nc = await connect({ servers: nats.url });
    const clock = new ManualClock(0);
    try {
      await createStreams(nc, P);
      const keys = Array.from({ length: 30 }, (_, i) => `k${i}`);
      // Two readings per key, all in the window [0, 1000); two processing-time timers per key.
      const readings = keys.flatMap((k, i) => [{ k, ts: i * 10 }, { k, ts: i * 10 + 5 }]);
      await publishAll(nc, readings.map((r, i) => [`${p}w.${SUBJECTS[i % 3]}`, r] as [string, unknown]));
      const dues = keys.flatMap((k, i) => [{ k, due: 1000 + i }, { k, due: 2000 + i }]);
      await publishAll(nc, dues.map((d, i) => [`${p}p.${SUBJECTS[i % 3]}`, d] as [string, unknown]));

      const first = job(P, 2, backend, clock);
      try {
        const client = await first.executeAsync();
        await until("every timer registered", () => metric(client.status(), "eventTimers") === 30 && metric(client.status(), "processingTimers") === 60);
        const result = await client.stop({ savepoint: true });
        assert.is(result.state, "stopped");
      } finally {
        await first.close();
      }
      assert.is((await readStream(nc, `${P}_OW`)).length, 0, "no window fired before the savepoint");
      assert.is((await readStream(nc, `${P}_OP`)).length, 0, "no processing-time timer fired before the savepoint");

      const second = job(P, 3, backend, clock);
      try {
        const client = await second.executeAsync();
        const s = client.status();
        assert.is(metric(s, "restoredEventTimers"), 30, "every event-time timer restored");
        assert.is(metric(s, "restoredProcessingTimers"), 60, "every processing-time timer restored");
        const owners = s.subtasks.filter((st) => Object.values(st.operators).some((m) => (m.restoredEventTimers ?? 0) > 0));
        assert.ok(owners.length >= 2, `the timers went to the subtasks owning their key groups (${owners.length} of 3 hold some)`);
        await fireProcessingTimers(nc, P, clock, dues.length);
        await closeWindows(nc, P);
        await until("every window fired", async () => (await readStream(nc, `${P}_OW`)).length >= keys.length);
        await client.stop();
      } finally {
        await second.close();
      }
      const out = await outputs(nc, P);
      assert.equal(out.windows, keys.map((k) => ({ k, w: 0, n: 2 })).sort((a, b) => a.k.localeCompare(b.k)));
      assert.equal(out.fired, sortFired(dues));
    } finally {
      await nc.close();
    }
  });

  restore(`a user function fails once: the restart from the checkpoint keeps windows and processing-time timers (${backend})`, async () => {
    const P = backend === "heap" ? "RH" : "RK";
    const p = P.toLowerCase();
    const nc = await connect({ servers: nats.url });
    const clock = new ManualClock(0);
    let failed = false;
    const failOnce = (r: { k: string; ts: number }) => {
      if (failed || r.ts !== 400) return false;
      return (failed = true);
    };
    const env = job(P, 2, backend, clock, failOnce);
    try {
      await createStreams(nc, P);
      await publishAll(nc, [[`${p}w.a`, { k: "a", ts: 100 }], [`${p}w.a`, { k: "a", ts: 200 }], [`${p}w.b`, { k: "b", ts: 300 }]]);
      const dues = Array.from({ length: 20 }, (_, i) => ({ k: `k${i}`, due: 1000 + i }));
      await publishAll(nc, dues.map((d, i) => [`${p}p.${SUBJECTS[i % 3]}`, d] as [string, unknown]));
      const client: JobClient = await env.executeAsync();
      await until("the timers registered", () => metric(client.status(), "eventTimers") === 2 && metric(client.status(), "processingTimers") === 20);
      const completed = client.status().checkpoints?.completed ?? 0;
      // The checkpoint in flight may have started before the timers: the one after it holds them.
      await until("two more checkpoints", () => (client.status().checkpoints?.completed ?? 0) >= completed + 2);
      await publishAll(nc, [[`${p}w.a`, { k: "a", ts: 400 }]]);
      await until("the restart", () => client.status().restarts >= 1 && client.status().state === "running");
      await until("the restored timers", () => metric(client.status(), "restoredEventTimers") === 2 && metric(client.status(), "restoredProcessingTimers") === 20);
      assert.ok(failed, "the user function failed once");
      await fireProcessingTimers(nc, P, clock, dues.length);
      await closeWindows(nc, P);
      await until("both windows fired", async () => (await readStream(nc, `${P}_OW`)).length >= 2);
      await client.stop();
      const out = await outputs(nc, P);
      assert.equal(out.windows, [{ k: "a", w: 0, n: 3 }, { k: "b", w: 0, n: 1 }]);
      assert.equal(out.fired, sortFired(dues));
    } finally {
      await env.close();
      await nc.close();
    }
  });
}

restore.run();
