// `env.fromSource(source, { watermarks })` (Flink's fromSource with a WatermarkStrategy): event-time
// windows fire from the source's watermarks, as with assignTimestampsAndWatermarks right after the source.
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { Sinks, Sources, StreamEnvironment, TumblingEventTimeWindows, WatermarkStrategy } from "../mod.ts";
import { withServer } from "./helpers/nats-server.ts";

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

s.run();
