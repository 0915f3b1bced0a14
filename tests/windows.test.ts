// Event-time windows and timers through real jobs, checked against a reference computed here, and the
// same results in sync, strict and out-of-order execution.
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { EventTimeSessionWindows, outputTag, SlidingEventTimeWindows, Sources, StreamEnvironment, TumblingEventTimeWindows, WatermarkStrategy, type JobOptions } from "../mod.ts";
import { withServer } from "./helpers/nats-server.ts";

const windows = suite("windows");
const nats = withServer(windows);

interface Reading { sensor: string; ts: number; v: number }

/** Readings mostly in order, some up to 300 ms late, a few hopelessly late. */
function readings(n: number, seed: number): Reading[] {
  let s = seed;
  const rand = () => ((s = (s * 1103515245 + 12345) & 0x7fffffff) / 0x7fffffff);
  const out: Reading[] = [];
  for (let i = 0; i < n; i++) {
    const late = i % 97 === 0 ? 5000 : rand() < 0.2 ? Math.floor(rand() * 300) : 0;
    out.push({ sensor: `s${Math.floor(rand() * 5)}`, ts: i * 20 - late + 10_000, v: Math.floor(rand() * 100) });
  }
  return out;
}

/** Windows as Flink computes them: a record is late when its window ended at or before the watermark it follows. */
function reference(events: Reading[], size: number, slide: number, outOfOrderness: number): { sums: Map<string, number>; late: number } {
  const sums = new Map<string, number>();
  let maxTs = Number.MIN_SAFE_INTEGER;
  let late = 0;
  for (const e of events) {
    // The periodic watermark can lag; a record is surely on time if its window ends after maxTs − bound.
    const watermark = maxTs - outOfOrderness - 1;
    const starts: number[] = [];
    for (let start = e.ts - (((e.ts % slide) + slide) % slide); start > e.ts - size; start -= slide) starts.push(start);
    const onTime = starts.filter((st) => st + size - 1 > watermark);
    if (onTime.length === 0) late++;
    for (const st of onTime) sums.set(`${e.sensor}@${st}`, (sums.get(`${e.sensor}@${st}`) ?? 0) + e.v);
    maxTs = Math.max(maxTs, e.ts);
  }
  return { sums, late };
}

async function runWindowJob(name: string, events: Reading[], assigner: ReturnType<typeof TumblingEventTimeWindows.of>, extra: Partial<JobOptions>) {
  const lateTag = outputTag<Reading>("late");
  const env = StreamEnvironment.create({ name, nats: nats.url, parallelism: 2, stateBackend: "heap", mode: "streaming", ...extra });
  try {
    const sums = env.fromSource(Sources.array(events))
      // A watermark after every record: the same lateness decisions in every run and every mode.
      .assignTimestampsAndWatermarks(WatermarkStrategy.boundedOutOfOrderness<Reading>(500, (e) => e.ts).withWatermarkPerRecord())
      .keyBy((e) => e.sensor)
      .window(assigner)
      .sideOutputLateData(lateTag)
      .aggregate<{ sum: number; sensor: string }, { sum: number; sensor: string }>({
        createAccumulator: () => ({ sum: 0, sensor: "" }),
        add: (e, acc) => ({ sum: acc.sum + e.v, sensor: e.sensor }),
        getResult: (acc) => acc,
      });
    const results = sums.process<string>({ processElement(r, ctx) { ctx.collect(`${r.sensor}@${ctx.timestamp! + 1 - 500}:${r.sum}`); } })
      .union(sums.getSideOutput(lateTag).map((e) => `late:${e.sensor}@${e.ts}`));
    return await results.executeAndCollect();
  } finally {
    await env.close();
  }
}

windows("tumbling window sums equal the reference; nothing lost when nothing is late", async () => {
  const events = readings(800, 1).map((e) => ({ ...e, ts: e.ts < 10_000 ? 10_000 : e.ts })).sort((a, b) => a.ts - b.ts);
  const env = StreamEnvironment.create({ name: "tumbling", nats: nats.url, parallelism: 2, stateBackend: "heap", mode: "streaming" });
  try {
    const out = await env.fromSource(Sources.array(events))
      .assignTimestampsAndWatermarks(WatermarkStrategy.forMonotonousTimestamps<Reading>((e) => e.ts))
      .keyBy((e) => e.sensor)
      .window(TumblingEventTimeWindows.of(1000))
      .reduce((a, b) => ({ sensor: a.sensor, ts: Math.max(a.ts, b.ts), v: a.v + b.v }))
      .executeAndCollect();
    const { sums } = reference(events, 1000, 1000, 0);
    const got = new Map(out.map((r) => [`${r.sensor}@${Math.floor(r.ts / 1000) * 1000}`, r.v]));
    assert.equal(new Map([...got].sort()), new Map([...sums].sort()));
  } finally {
    await env.close();
  }
});

windows("sliding windows: every record counts in size/slide windows", async () => {
  const events: Reading[] = Array.from({ length: 60 }, (_, i) => ({ sensor: "x", ts: i * 100, v: 1 }));
  const env = StreamEnvironment.create({ name: "sliding", nats: nats.url, parallelism: 1, stateBackend: "heap", mode: "streaming" });
  try {
    const out = await env.fromSource(Sources.array(events))
      .assignTimestampsAndWatermarks(WatermarkStrategy.forMonotonousTimestamps<Reading>((e) => e.ts))
      .keyBy((e) => e.sensor)
      .window(SlidingEventTimeWindows.of(1000, 500))
      .process<string>({ process(key, c, elements, o) { o.collect(`${key}[${c.window.start},${c.window.end})=${elements.length}`); } })
      .executeAndCollect();
    const { sums } = reference(events, 1000, 500, 0);
    const expected = [...sums].map(([k, n]) => { const st = Number(k.split("@")[1]); return `x[${st},${st + 1000})=${n}`; }).sort();
    assert.equal([...out].sort(), expected);
    assert.ok(out.includes("x[-500,500)=5") && out.includes("x[5500,6500)=5"), "partial windows at both ends");
  } finally {
    await env.close();
  }
});

windows("sliding windows with a slide larger than the size leave gaps: records there are in no window and not late", async () => {
  const lateTag = outputTag<Reading>("late");
  const events: Reading[] = Array.from({ length: 30 }, (_, i) => ({ sensor: "x", ts: i * 100, v: 1 }));
  const env = StreamEnvironment.create({ name: "gaps", nats: nats.url, parallelism: 1, stateBackend: "heap", mode: "streaming" });
  try {
    const counts = env.fromSource(Sources.array(events))
      .assignTimestampsAndWatermarks(WatermarkStrategy.forMonotonousTimestamps<Reading>((e) => e.ts).withWatermarkPerRecord())
      .keyBy((e) => e.sensor)
      .window(SlidingEventTimeWindows.of(300, 1000))
      .sideOutputLateData(lateTag)
      .process<string>({ process(key, c, elements, o) { o.collect(`${key}[${c.window.start},${c.window.end})=${elements.length}`); } });
    const out = await counts.union(counts.getSideOutput(lateTag).map((e) => `late:${e.ts}`)).executeAndCollect();
    assert.equal([...out].sort(), ["x[0,300)=3", "x[1000,1300)=3", "x[2000,2300)=3"]);
  } finally {
    await env.close();
  }
});

windows("a late record is not added to a fired window: it is counted and goes to the side output", async () => {
  const lateTag = outputTag<Reading>("late");
  const events: Reading[] = [
    { sensor: "a", ts: 1000, v: 1 }, { sensor: "a", ts: 5000, v: 2 },
    // The watermark is 4999 by now: the window [1000, 2000) has fired, so this one is late.
    { sensor: "a", ts: 1500, v: 100 },
    { sensor: "a", ts: 5100, v: 3 },
  ];
  const env = StreamEnvironment.create({ name: "late", nats: nats.url, parallelism: 1, stateBackend: "heap", mode: "streaming" });
  try {
    const sums = env.fromSource(Sources.array(events))
      .assignTimestampsAndWatermarks(WatermarkStrategy.forMonotonousTimestamps<Reading>((e) => e.ts).withWatermarkPerRecord())
      .keyBy((e) => e.sensor)
      .window(TumblingEventTimeWindows.of(1000))
      .sideOutputLateData(lateTag)
      .reduce((a, b) => ({ ...a, v: a.v + b.v }), { name: "sums" });
    const out = await sums.map((r) => `sum:${r.v}`).union(sums.getSideOutput(lateTag).map((r) => `late:${r.v}`)).executeAndCollect();
    assert.equal([...out].sort(), ["late:100", "sum:1", "sum:5"]);
  } finally {
    await env.close();
  }
});

for (const [label, asyncState] of [
  ["sync", { enabled: false }],
  ["async strict", { enabled: true, watermarkMode: "strict" as const }],
  ["async out-of-order", { enabled: true, watermarkMode: "out-of-order" as const }],
] as const) {
  windows(`window results and late records equal the reference in ${label} execution`, async () => {
    const events = readings(1500, 42);
    const out = await runWindowJob(`modes-${label.replace(/[^a-z]/g, "")}`, events, TumblingEventTimeWindows.of(500), { asyncState });
    const { sums, late } = reference(events, 500, 500, 500);
    const fired = new Map(out.filter((s) => !s.startsWith("late:")).map((s) => { const [k, v] = s.split(":"); return [k!, Number(v)] as const; }));
    assert.equal(new Map([...fired].sort()), new Map([...sums].sort()), "every window fired once with the reference sum");
    const lateOut = out.filter((s) => s.startsWith("late:"));
    assert.is(lateOut.length, late, "late records went to the side output");
    assert.ok(late > 0, "the input has late records");
  });
}

for (const asyncEnabled of [true, false]) {
  windows(`allowedLateness: a record within it fires its window again with the updated result; one past it goes to the late side output (async state ${asyncEnabled ? "on" : "off"})`, async () => {
    const env = StreamEnvironment.create({ name: `lateness${asyncEnabled ? "a" : "s"}`, nats: nats.url, parallelism: 1, stateBackend: "heap", mode: "streaming", asyncState: { enabled: asyncEnabled } }, { log: () => {} });
    try {
      // Tumbling 10 ms, lateness 5 ms. 12 moves the watermark to 11: [0,10) fires with 1 and 5. 3 is late
      // but within the lateness (11 < 9 + 5): [0,10) fires again with three. 20 moves the watermark to 19:
      // [10,20) fires and [0,10) is dropped, so 4 is late for good. The end of input fires [20,30).
      const input = [1, 5, 12, 3, 20, 4].map((ts) => ({ k: "a", ts }));
      const late = outputTag<{ k: string; ts: number }>("late");
      const counted = env.fromSource(Sources.array(input), { watermarks: WatermarkStrategy.forMonotonousTimestamps<{ k: string; ts: number }>((e) => e.ts).withWatermarkPerRecord() })
        .keyBy((e) => e.k)
        .window(TumblingEventTimeWindows.of(10))
        .allowedLateness(5)
        .sideOutputLateData(late)
        .process<string>({ process: (_k, c, elements, out) => out.collect(`[${c.window.start},${c.window.end}):${elements.map((e) => e.ts).join("+")}`) });
      const all = await counted.map((r) => `window ${r}`).union(counted.getSideOutput(late).map((e) => `late ${e.ts}`)).executeAndCollect();
      assert.equal([...all].sort(), ["late 4", "window [0,10):1+5", "window [0,10):1+5+3", "window [10,20):12", "window [20,30):20"]);
    } finally {
      await env.close();
    }
  });
}

windows("allowedLateness: a negative or fractional lateness is a one-line error when the graph is built", () => {
  const env = StreamEnvironment.create({ name: "lateness-bad" });
  const w = () => env.fromSource(Sources.array([{ k: "a" }])).keyBy((e) => e.k).window(TumblingEventTimeWindows.of(10));
  assert.throws(() => w().allowedLateness(-1), /window\(\)\.allowedLateness\(\): expected a non-negative integer \(ms\), got -1/);
  assert.throws(() => w().allowedLateness("5" as never), /got "5"/);
});

for (const [mode, asyncEnabled] of [["streaming", true], ["streaming", false], ["batch", true]] as const) {
  windows(`session windows: overlapping or touching sessions merge, a session fires once the watermark passes its end (${mode}, async state ${asyncEnabled ? "on" : "off"})`, async () => {
    const env = StreamEnvironment.create({ name: `sessions${mode[0]}${asyncEnabled ? "a" : "s"}`, nats: nats.url, parallelism: 1, stateBackend: "heap", mode, asyncState: { enabled: asyncEnabled } }, { log: () => {} });
    try {
      // Gap 10, watermarks 20 behind. a: 1 and 5 make [1,15); 30 opens [30,40); 18 opens [18,28); 14 joins
      // [1,15) and [18,28) into [1,28). b's 100 moves the watermark to 79: both of a's sessions fire.
      // a's 2 then falls in [2,12), long past: late (in batch, sorted by time, it is in [1,28)).
      const input = [["a", 1], ["a", 5], ["a", 30], ["a", 18], ["a", 14], ["b", 100], ["a", 2]].map(([k, ts]) => ({ k: k as string, ts: ts as number }));
      const late = outputTag<{ k: string; ts: number }>("late");
      const sessions = env.fromSource(Sources.array(input), { watermarks: WatermarkStrategy.boundedOutOfOrderness<{ k: string; ts: number }>(20, (e) => e.ts).withWatermarkPerRecord() })
        .keyBy((e) => e.k)
        .window(EventTimeSessionWindows.withGap(10))
        .sideOutputLateData(late)
        .process<string>({ process: (k, c, elements, out) => out.collect(`${k}[${c.window.start},${c.window.end}):${elements.map((e) => e.ts).sort((x, y) => x - y).join("+")}`) });
      const all = await sessions.union(sessions.getSideOutput(late).map((e) => `late ${e.k}@${e.ts}`)).executeAndCollect();
      assert.equal([...all].sort(), mode === "batch"
        ? ["a[1,28):1+2+5+14+18", "a[30,40):30", "b[100,110):100"]
        : ["a[1,28):1+5+14+18", "a[30,40):30", "b[100,110):100", "late a@2"]);
    } finally {
      await env.close();
    }
  });
}

windows("session windows: reduce merges the sessions' results; aggregate needs merge, refused in one line without it", async () => {
  const env = StreamEnvironment.create({ name: "sessions-reduce", nats: nats.url, parallelism: 1, stateBackend: "heap", mode: "streaming" }, { log: () => {} });
  try {
    const input = [1, 5, 30, 18, 14].map((ts) => ({ k: "a", ts, n: 1 }));
    const keyed = () => env.fromSource(Sources.array(input), { watermarks: WatermarkStrategy.boundedOutOfOrderness<{ k: string; ts: number; n: number }>(20, (e) => e.ts) }).keyBy((e) => e.k);
    const counts = await keyed().window(EventTimeSessionWindows.withGap(10)).reduce((x, y) => ({ k: x.k, ts: Math.min(x.ts, y.ts), n: x.n + y.n })).map((r) => `${r.ts}:${r.n}`).executeAndCollect();
    assert.equal([...counts].sort(), ["1:4", "30:1"]);
    assert.throws(() => keyed().window(EventTimeSessionWindows.withGap(10)).aggregate({ createAccumulator: () => 0, add: (_e, n: number) => n + 1, getResult: (n) => n }),
      /window\(EventTimeSessionWindows\)\.aggregate\(\): expected an AggregateFunction with merge/);
    assert.throws(() => EventTimeSessionWindows.withGap(0), /gap must be a positive integer/);
  } finally {
    await env.close();
  }
});

windows("a window's record without a timestamp fails the job naming the operator, in both modes; an assigner's wrong argument reads as given", async () => {
  for (const mode of ["streaming", "batch"] as const) {
    const env = StreamEnvironment.create({ name: `windows-no-ts-${mode}`, nats: nats.url, parallelism: 1, stateBackend: "heap", mode }, { log: () => {} });
    try {
      const run = env.fromSource(Sources.array([{ k: "a", n: 1 }])).keyBy((e) => e.k).window(TumblingEventTimeWindows.of(1000)).reduce((x, y) => ({ k: x.k, n: x.n + y.n }), { name: "totals" }).executeAndCollect();
      const error = await run.then(() => undefined, (e: unknown) => e as Error);
      assert.ok(error, `${mode}: the job fails`);
      assert.match(error!.message, /^operator "totals" \(subtask 0\) failed for key "a": event-time windows need timestamps: give the source a WatermarkStrategy/, mode);
    } finally {
      await env.close();
    }
  }
  assert.throws(() => TumblingEventTimeWindows.of("1000" as never), /size must be a positive integer \(ms\), got "1000" \(a string\)/);
  assert.throws(() => SlidingEventTimeWindows.of(1000, Number.NaN), /slide must be a positive integer \(ms\), got NaN/);
});

windows.run();
