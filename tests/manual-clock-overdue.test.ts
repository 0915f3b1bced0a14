// A ManualClock (`weir run --manual-clock`) fires a processing-time timer that is already due without
// waiting for the clock to move, as the system clock does: one registered for a past time, and one
// restored overdue after a crash. Until 2026-12-06 both waited for the next advance-clock, which a job
// restarted at its old time may never get: its overdue timers and windows stayed silent.
import { suite } from "uvu";
import * as assert from "uvu/assert";
import * as t from "io-ts";
import { connect } from "@nats-io/transport-node";
import { Sinks, Sources, StreamEnvironment } from "../mod.ts";
import { ManualClock } from "../runtime/core/clock.ts";
import { withServer } from "./helpers/nats-server.ts";
import { createStream, publishAll, readStream } from "./helpers/streams.ts";

const test = suite("manual clock: overdue timers");
const nats = withServer(test);
const Due = t.type({ k: t.string, due: t.number });

async function until(what: string, ok: () => Promise<boolean>, ms = 30_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    if (await ok()) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`timed out waiting for ${what}`);
}

test("timers due before the manual clock's time fire without an advance", async () => {
  const nc = await connect({ servers: nats.url });
  await createStream(nc, "MCO_IN", ["mco.in.*"]);
  await createStream(nc, "MCO_OUT", ["mco.out.>"]);
  const dues = Array.from({ length: 6 }, (_, i) => ({ k: `k${i}`, due: 1000 + i }));
  await publishAll(nc, dues.map((d) => [`mco.in.${d.k}`, d] as [string, unknown]));
  const env = StreamEnvironment.create({ name: "mco", nats: nats.url, parallelism: 2, stateBackend: "heap" }, { log: () => {}, clock: new ManualClock(5000) });
  env.fromSource(Sources.jetstream({ stream: "MCO_IN", subjects: ["mco.in.*"], codec: Due }), { uid: "dues" })
    .keyBy((d) => d.k)
    .process<{ k: string; due: number; now: number }>({
      processElement(d, ctx) { ctx.timers.registerProcessingTimeTimer(d.due); },
      onTimer(due, ctx) { ctx.collect({ k: ctx.key, due, now: ctx.currentProcessingTime() }); },
    }, { uid: "remind" })
    .sinkTo(Sinks.jetstream({ stream: "MCO_OUT", subject: (f) => `mco.out.${f.k}` }), { uid: "out" });
  const client = await env.executeAsync();
  try {
    await until("every overdue timer fired", async () => (await readStream(nc, "MCO_OUT")).length >= dues.length);
    const fired = (await readStream<{ k: string; due: number; now: number }>(nc, "MCO_OUT")).sort((a, b) => a.due - b.due);
    assert.equal(fired, dues.map((d) => ({ ...d, now: 5000 })), "each once, at the clock's time");
  } finally {
    await client.cancel().catch(() => {});
    await env.close();
    await nc.close();
  }
});

test("timers restored overdue (the clock started past them) fire without an advance", async () => {
  const nc = await connect({ servers: nats.url });
  await createStream(nc, "MCR_IN", ["mcr.in.*"]);
  await createStream(nc, "MCR_OUT", ["mcr.out.>"]);
  const dues = Array.from({ length: 6 }, (_, i) => ({ k: `k${i}`, due: 1000 + i }));
  await publishAll(nc, dues.map((d) => [`mcr.in.${d.k}`, d] as [string, unknown]));
  const build = (clock: ManualClock) => {
    const env = StreamEnvironment.create({ name: "mcr", nats: nats.url, parallelism: 2, checkpointIntervalMs: 100 }, { log: () => {}, clock });
    env.fromSource(Sources.jetstream({ stream: "MCR_IN", subjects: ["mcr.in.*"], codec: Due }), { uid: "dues" })
      .keyBy((d) => d.k)
      .process<{ k: string; due: number; now: number }>({
        processElement(d, ctx) { ctx.timers.registerProcessingTimeTimer(d.due); },
        onTimer(due, ctx) { ctx.collect({ k: ctx.key, due, now: ctx.currentProcessingTime() }); },
      }, { uid: "remind" })
      .sinkTo(Sinks.jetstream({ stream: "MCR_OUT", subject: (f) => `mcr.out.${f.k}` }), { uid: "out" });
    return env;
  };
  const first = build(new ManualClock(0));
  let second: StreamEnvironment | undefined;
  try {
    const client = await first.executeAsync();
    const pending = () => client.status().subtasks.reduce((n, st) => n + Object.values(st.operators).reduce((m, o) => m + (o.processingTimers ?? 0), 0), 0);
    await until("the timers registered", async () => pending() === dues.length);
    const completed = client.status().checkpoints?.completed ?? 0;
    await until("a checkpoint holding them", async () => (client.status().checkpoints?.completed ?? 0) >= completed + 2);
    await client.cancel();
    await first.close();
    second = build(new ManualClock(5000));
    const restored = await second.executeAsync();
    try {
      await until("every restored timer fired", async () => (await readStream(nc, "MCR_OUT")).length >= dues.length);
      const fired = (await readStream<{ k: string; due: number; now: number }>(nc, "MCR_OUT")).sort((a, b) => a.due - b.due);
      assert.equal(fired, dues.map((d) => ({ ...d, now: 5000 })), "each once, at the clock's time");
      const restoredTimers = restored.status().subtasks.reduce((n, st) => n + Object.values(st.operators).reduce((m, o) => m + (o.restoredProcessingTimers ?? 0), 0), 0);
      assert.is(restoredTimers, dues.length, "they came from the checkpoint, not from a replay");
    } finally {
      await restored.cancel().catch(() => {});
    }
  } finally {
    await first.close().catch(() => {});
    await second?.close();
    await nc.close();
  }
});

test.run();
