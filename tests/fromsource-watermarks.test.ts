// `env.fromSource(source, { watermarks })` (Flink's fromSource with a WatermarkStrategy): event-time
// windows fire from the source's watermarks, as with assignTimestampsAndWatermarks right after the source.
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { MIN_WATERMARK, Sinks, Sources, StreamEnvironment, TumblingEventTimeWindows, WatermarkStrategy } from "../mod.ts";
import { connect } from "@nats-io/transport-node";
import { jetstream, jetstreamManager } from "@nats-io/jetstream";
import { withServer } from "./helpers/nats-server.ts";
import { within } from "./helpers/cli.ts";
import { messageOf } from "../runtime/core/errors.ts";

const s = suite("fromSource watermarks");
const nats = withServer(s);

interface Reading { sensor: string; ts: number; v: number }

const events: Reading[] = Array.from({ length: 300 }, (_, i) => ({ sensor: `s${i % 3}`, ts: 10_000 + i * 10, v: i }));

/** Sum of v per (sensor, 1 s window), computed here. */
function expected(): string[] {
  const sums = new Map<string, number>();
  for (const e of events) {
    const k = `${e.sensor}@${Math.floor(e.ts / 1000) * 1000}`;
    sums.set(k, (sums.get(k) ?? 0) + e.v);
  }
  return [...sums].map(([k, v]) => `${k}=${v}`).sort();
}

s("event-time windows fire from watermarks given to fromSource", async () => {
  const env = StreamEnvironment.create({ name: "fromsource-wm", nats: nats.url, parallelism: 2, stateBackend: "heap" });
  try {
    const out = env.fromSource(Sources.array(events), {
      name: "readings",
      uid: "readings",
      watermarks: WatermarkStrategy.forMonotonousTimestamps<Reading>((e) => e.ts),
    })
      .keyBy((e) => e.sensor)
      .window(TumblingEventTimeWindows.of(1000))
      .reduce((a, b) => ({ sensor: a.sensor, ts: Math.min(a.ts, b.ts), v: a.v + b.v }))
      .map((r) => `${r.sensor}@${Math.floor(r.ts / 1000) * 1000}=${r.v}`);
    const got = await out.executeAndCollect();
    assert.equal([...got].sort(), expected());
  } finally {
    await env.close();
  }
});

s("the assigner chains with the source, at the source's parallelism (explicit or the source's default)", () => {
  const env = StreamEnvironment.create({ name: "fromsource-wm-p", parallelism: 3 });
  const wm = WatermarkStrategy.forMonotonousTimestamps<{ ts: number }>((e) => e.ts);
  env.fromSource(Sources.generator({ count: 10, make: (i) => ({ ts: i }) }), { name: "gen", parallelism: 2, watermarks: wm }).sinkTo(Sinks.print());
  env.fromSource(Sources.array([{ ts: 1 }]), { name: "arr", watermarks: wm }).sinkTo(Sinks.print());
  const g = env.jobGraph();
  const gen = g.vertices.find((v) => v.nodes[0]!.name === "gen")!;
  assert.is(gen.parallelism, 2);
  assert.equal(gen.nodes.map((n) => n.name), ["gen", "gen: watermarks"]);
  const arr = g.vertices.find((v) => v.nodes[0]!.name === "arr")!;
  assert.is(arr.parallelism, 1);
  assert.equal(arr.nodes.map((n) => n.name), ["arr", "arr: watermarks"]);
});

s("an assigner that returns a string fails the job naming what it returned", async () => {
  const env = StreamEnvironment.create({ name: "fromsource-wm-str", nats: nats.url, parallelism: 1, stateBackend: "heap" }, { log: () => {} });
  try {
    const out = env.fromSource(Sources.array(events), { name: "readings", watermarks: WatermarkStrategy.forMonotonousTimestamps<Reading>((e) => String(e.ts) as unknown as number) });
    const error = await out.executeAndCollect().then(() => "finished", (e: Error) => e.message);
    assert.match(error, 'timestamp assigner returned "10000" (string), expected a number');
  } finally {
    await env.close();
  }
});

s("an async assigner (a Promise) or one throwing undefined fails the job saying so", async () => {
  const env = StreamEnvironment.create({ name: "fromsource-wm-async", nats: nats.url, parallelism: 1, stateBackend: "heap" }, { log: () => {} });
  try {
    const out = env.fromSource(Sources.array(events), { name: "readings", watermarks: WatermarkStrategy.forMonotonousTimestamps<Reading>((async (e: Reading) => e.ts) as unknown as (e: Reading) => number) });
    const error = await out.executeAndCollect().then(() => "finished", (e: Error) => e.message);
    assert.match(error, "timestamp assigner returned a Promise (it must return the timestamp itself: not an async function)");
  } finally {
    await env.close();
  }
  assert.is(messageOf(undefined), "undefined was thrown, not an Error");
  assert.is(messageOf({ why: 1 }), '{"why":1}');
  assert.is(typeof messageOf(() => 1), "string", "a function thrown: JSON gives undefined");
});

interface Click { user: string; ts: number }

s("a JetStream backlog over two subjects: a watermark per subject, so the subject read behind loses no record (Flink's per-split watermarks)", async () => {
  // Both subjects cover the same 400 s, a with ten clicks a second, b with one; one source subtask reads
  // both, each through its own consumer, the two taking turns by message count: b's event time runs ahead
  // of a's. One watermark over both counted a's records late (most of a's windows came out short).
  const nc = await connect({ servers: nats.url });
  const env = StreamEnvironment.create({ name: "fromsource-wm-split", nats: nats.url, parallelism: 1, mode: "streaming", stateBackend: "heap" }, { log: () => {} });
  const seconds = 400;
  const perSecond = { a: 10, b: 1 } as const;
  try {
    await (await jetstreamManager(nc)).streams.add({ name: "CLICKS", subjects: ["clicks.*"] });
    const js = jetstream(nc);
    for (const user of ["a", "b"] as const) {
      const n = seconds * perSecond[user];
      for (let i = 0; i < n; i += 500) {
        await Promise.all(Array.from({ length: Math.min(500, n - i) }, (_, k) => js.publish(`clicks.${user}`, JSON.stringify({ user, ts: Math.floor(((i + k) * 1000) / perSecond[user]) }))));
      }
    }
    const windows = await env.fromSource(Sources.jetstream<Click>({ stream: "CLICKS", subjects: ["clicks.a", "clicks.b"], bounded: true }), {
      name: "clicks",
      // A watermark after every record that advances it: what a periodic one does to a longer backlog.
      watermarks: WatermarkStrategy.forMonotonousTimestamps<Click>((e) => e.ts).withWatermarkPerRecord(),
    })
      .keyBy((e) => e.user)
      .window(TumblingEventTimeWindows.of(10_000))
      .aggregate({ createAccumulator: () => ({ user: "", n: 0 }), add: (e: Click, acc: { user: string; n: number }) => ({ user: e.user, n: acc.n + 1 }), getResult: (acc) => acc, merge: (x, y) => ({ user: x.user || y.user, n: x.n + y.n }) })
      .executeAndCollect();
    const short = windows.filter((w) => w.n !== 10 * perSecond[w.user as "a" | "b"]);
    assert.equal({ windows: windows.length, short: short.length }, { windows: 2 * (seconds / 10), short: 0 });
  } finally {
    await env.close();
    await nc.close();
  }
});

/**
 * Clicks a second apart published to `published` of a new stream `stream` (on `<prefix>.*`), read from
 * `subjects` by a job at `parallelism` with `strategy`: the counts of the first two 10 s windows to fire
 * (the third waits for a later record), or undefined if they do not fire within 60 s.
 */
async function firstTwoWindows(name: string, stream: string, prefix: string, published: string, subjects: string[], parallelism: number, strategy: WatermarkStrategy<Click>, hybrid = false): Promise<number[] | undefined> {
  const nc = await connect({ servers: nats.url });
  const env = StreamEnvironment.create({ name, nats: nats.url, parallelism, stateBackend: "heap", autoWatermarkIntervalMs: 50 }, { log: () => {} });
  try {
    await (await jetstreamManager(nc)).streams.add({ name: stream, subjects: [`${prefix}.*`] });
    const js = jetstream(nc);
    for (let i = 0; i < 30; i++) await js.publish(published, JSON.stringify({ user: "u", ts: i * 1000 }));
    const source = hybrid
      ? Sources.hybrid(Sources.jetstream<Click>({ stream, subjects, bounded: true }), Sources.jetstream<Click>({ stream, subjects }))
      : Sources.jetstream<Click>({ stream, subjects });
    const job = env.fromSource(source, { name: prefix, watermarks: strategy })
      .keyBy((e) => e.user)
      .window(TumblingEventTimeWindows.of(10_000))
      .aggregate({ createAccumulator: () => 0, add: (_e: Click, n: number) => n + 1, getResult: (n: number) => n, merge: (a: number, b: number) => a + b })
      .executeAndCollect({ limit: 2 });
    return await within(job, 60_000);
  } finally {
    await env.close();
    await nc.close();
  }
}

const byTs = WatermarkStrategy.forMonotonousTimestamps<Click>((e) => e.ts);

s("a subject that never delivers holds the watermark back until withIdleness marks it idle", async () => {
  const windows = await firstTwoWindows("fromsource-wm-idle", "QUIET", "quiet", "quiet.busy", ["quiet.busy", "quiet.empty"], 1, byTs.withIdleness(300));
  assert.equal(windows, [10, 10], "the first two windows fire once quiet.empty is idle");
});

s("a source subtask with no subject to read is idle from the start: it does not hold the other's windows back", async () => {
  // One subject over two source subtasks: subtask 1 reads nothing; no withIdleness.
  const windows = await firstTwoWindows("fromsource-wm-nosubject", "ONESUBJECT", "one", "one.only", ["one.only"], 2, byTs);
  assert.equal(windows, [10, 10], "the first two windows fire");
});

s("Sources.hybrid of JetStream parts: a subtask with no subject is idle there too, in the backlog and after the switch", async () => {
  // The hybrid reader showed no splits: fromSource's watermarks took subtask 1's input as one split that
  // never delivered, and no window of the job ever fired (audit).
  const windows = await firstTwoWindows("fromsource-wm-hybrid", "HYBRIDONE", "hyone", "hyone.only", ["hyone.only"], 2, byTs, true);
  assert.equal(windows, [10, 10], "the first two windows fire");
});

s("a source subtask with no subject is idle before the other's backlog goes through, not at its first periodic check", async () => {
  // A dedup or session job over a backlog read at parallelism 2 from one subject ran its records at
  // watermark MIN until subtask 1 said idle at its first periodic check (200 ms): timers that clear state
  // fired late, and what came out depended on timing. A long interval leaves only the early idle mark.
  const nc = await connect({ servers: nats.url });
  const env = StreamEnvironment.create({ name: "fromsource-wm-idle-early", nats: nats.url, parallelism: 2, mode: "streaming", stateBackend: "heap", autoWatermarkIntervalMs: 600_000 }, { log: () => {} });
  const n = 2000;
  try {
    await (await jetstreamManager(nc)).streams.add({ name: "BACKLOG1", subjects: ["backlog1.*"] });
    const js = jetstream(nc);
    for (let i = 0; i < n; i += 500) await Promise.all(Array.from({ length: 500 }, (_, k) => js.publish("backlog1.u", JSON.stringify({ user: `u${(i + k) % 7}`, ts: (i + k) * 1000 }))));
    const seen = env.fromSource(Sources.jetstream<Click>({ stream: "BACKLOG1", subjects: ["backlog1.u"] }), { name: "backlog", watermarks: byTs.withWatermarkPerRecord() })
      .keyBy((e) => e.user)
      .process<{ ts: number; wm: number }>({ processElement(e, ctx) { ctx.collect({ ts: e.ts, wm: ctx.currentWatermark() }); } })
      .executeAndCollect({ limit: n });
    const out = await within(seen, 60_000);
    assert.ok(out !== undefined, "the backlog went through");
    const late = out.filter((r) => r.ts >= (n / 2) * 1000 && r.wm === MIN_WATERMARK).length;
    assert.is(late, 0, "records of the backlog's second half ran at watermark MIN");
  } finally {
    await env.close();
    await nc.close();
  }
});

s.run();
