// Processing-time windows (Flink's TumblingProcessingTimeWindows, SlidingProcessingTimeWindows,
// ProcessingTimeSessionWindows): a record's windows come from the clock when it arrives, and fire when
// the clock passes their end; no timestamps or watermarks needed. A ManualClock moves the time.
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { connect, type NatsConnection } from "@nats-io/transport-node";
import {
  EventTimeSessionWindows, ProcessingTimeSessionWindows, SlidingProcessingTimeWindows, Sources, StreamEnvironment, TumblingProcessingTimeWindows, outputTag,
  type JobClient, type SinkDef, type WindowAssigner,
} from "../mod.ts";
import { ManualClock } from "../runtime/core/clock.ts";
import { withServer } from "./helpers/nats-server.ts";
import { createStream, publishAll } from "./helpers/streams.ts";
import { eventually } from "./helpers/cli.ts";

const test = suite("processing-time windows");
const server = withServer(test);
let nc: NatsConnection;
test.before(async () => { nc = await connect({ servers: server.url }); });
test.after(async () => { await nc?.close(); });

interface Hit { k: string; n: number }
interface Out { k: string; sum: number; ts: number | undefined }

function collecting(out: Out[]): SinkDef<Hit> {
  return { kind: "collect", createWriter: async () => ({ write: (v: Hit, ts) => { out.push({ k: v.k, sum: v.n, ts }); }, flush: async () => {}, close: async () => {} }) };
}

/** An unbounded job summing `n` per key in `assigner`'s windows, on `clock`. */
async function start(name: string, assigner: WindowAssigner, clock: ManualClock, out: Out[]): Promise<{ env: StreamEnvironment; client: JobClient }> {
  await createStream(nc, name.toUpperCase(), [`${name}.>`]);
  const env = StreamEnvironment.create({ name, nats: server.url, parallelism: 2, stateBackend: "heap" }, { log: () => {}, clock });
  env.fromSource(Sources.jetstream<Hit>({ stream: name.toUpperCase(), subjects: [`${name}.>`] }), { parallelism: 1 })
    .keyBy((h: Hit) => h.k)
    .window(assigner)
    .reduce((a, b) => ({ k: a.k, n: a.n + b.n }))
    .sinkTo(collecting(out));
  return { env, client: await env.executeAsync() };
}

/** Publishes `hits` and waits until the window operator took them all. */
async function feed(client: JobClient, name: string, hits: Hit[], total: number): Promise<void> {
  await publishAll(nc, hits.map((h) => [`${name}.x`, h]));
  await eventually(`${total} records in the window operator`, 30_000, () => {
    const taken = client.status().subtasks.filter((s) => s.name.includes("Window")).reduce((n, s) => n + s.recordsIn, 0);
    return taken >= total ? true : undefined;
  });
}

const byKey = (out: Out[]) => [...out].sort((a, b) => (a.ts ?? 0) - (b.ts ?? 0) || a.k.localeCompare(b.k)).map((o) => `${o.k}=${o.sum}@${o.ts}`);

test("tumbling: each window holds what arrived while the clock was in it, fires once the clock passes its end, stamped end − 1", async () => {
  const clock = new ManualClock(10_000);
  const out: Out[] = [];
  const { env, client } = await start("ptumble", TumblingProcessingTimeWindows.of(1000), clock, out);
  try {
    await feed(client, "ptumble", [{ k: "a", n: 1 }, { k: "b", n: 10 }, { k: "a", n: 2 }], 3);
    clock.advance(500);
    await feed(client, "ptumble", [{ k: "a", n: 4 }], 4);
    assert.equal(out, [], "nothing fires before the window's end");
    clock.advance(500); // 11,000: [10,000, 11,000) ends
    await eventually("the first windows fired", 30_000, () => (out.length >= 2 ? true : undefined));
    await feed(client, "ptumble", [{ k: "b", n: 5 }, { k: "c", n: 7 }], 6);
    clock.advance(1000);
    await eventually("the second windows fired", 30_000, () => (out.length >= 4 ? true : undefined));
    assert.equal(byKey(out), ["a=7@10999", "b=10@10999", "b=5@11999", "c=7@11999"]);
  } finally {
    await client.cancel().catch(() => {});
    await env.close();
  }
});

test("sliding and session windows on the clock", async () => {
  const clock = new ManualClock(0);
  const slid: Out[] = [];
  const sliding = await start("pslide", SlidingProcessingTimeWindows.of(1000, 500), clock, slid);
  const sessions: Out[] = [];
  const session = await start("psession", ProcessingTimeSessionWindows.withGap(300), clock, sessions);
  try {
    await feed(sliding.client, "pslide", [{ k: "a", n: 1 }], 1); // at 0: [-500, 500) and [0, 1000)
    await feed(session.client, "psession", [{ k: "a", n: 1 }], 1); // session [0, 300)
    clock.advance(200);
    await feed(session.client, "psession", [{ k: "a", n: 2 }], 2); // at 200: merges into [0, 500)
    clock.advance(400); // 600: the sliding [-500, 500) and the session [0, 500) fire
    await eventually("the first sliding window and the session fired", 30_000, () => (slid.length >= 1 && sessions.length >= 1 ? true : undefined));
    await feed(sliding.client, "pslide", [{ k: "a", n: 10 }], 2); // at 600: [0, 1000) and [500, 1500)
    await feed(session.client, "psession", [{ k: "a", n: 4 }], 3); // a new session [600, 900)
    clock.advance(1000);
    await eventually("the later windows fired", 30_000, () => (slid.length >= 3 && sessions.length >= 2 ? true : undefined));
    assert.equal(byKey(slid), ["a=1@499", "a=11@999", "a=10@1499"]);
    assert.equal(byKey(sessions), ["a=3@499", "a=4@899"]);
  } finally {
    for (const j of [sliding, session]) {
      await j.client.cancel().catch(() => {});
      await j.env.close();
    }
  }
});

test("in batch mode every key's processing-time windows fire at the end of its input", async () => {
  const env = StreamEnvironment.create({ name: "pbatch", nats: server.url, parallelism: 2, stateBackend: "heap", mode: "batch" }, { log: () => {} });
  try {
    const hits = Array.from({ length: 300 }, (_, i): Hit => ({ k: `k${i % 7}`, n: i }));
    const sums = await env.fromSource(Sources.array(hits)).keyBy((h) => h.k).window(TumblingProcessingTimeWindows.of(3_600_000)).reduce((a, b) => ({ k: a.k, n: a.n + b.n })).executeAndCollect();
    const expected = new Map<string, number>();
    for (const h of hits) expected.set(h.k, (expected.get(h.k) ?? 0) + h.n);
    assert.equal(Object.fromEntries(sums.map((s) => [s.k, s.n])), Object.fromEntries(expected));
  } finally {
    await env.close();
  }
});

test("streaming, a bounded job ends with its open processing-time windows unfired, as Flink's streaming mode, and says so", async () => {
  const lines: string[] = [];
  const env = StreamEnvironment.create({ name: "pend", nats: server.url, parallelism: 2, stateBackend: "heap", mode: "streaming" }, { log: (l) => lines.push(l) });
  try {
    const out = await env.fromSource(Sources.array([{ k: "a", n: 1 }, { k: "b", n: 2 }])).keyBy((h) => h.k).window(TumblingProcessingTimeWindows.of(3_600_000)).reduce((a, b) => ({ k: a.k, n: a.n + b.n })).executeAndCollect();
    assert.equal(out, []);
  } finally {
    await env.close();
  }
  const said = lines.filter((l) => /the input ended with 1 processing-time timer\(s\) pending \(processing-time windows too\): they do not fire/.test(l));
  assert.is(said.length, 2, `one line per keyed subtask: ${lines.join(" | ")}`);
});

test("lateness options refuse processing-time windows (they have no late records), as does an unknown time domain", () => {
  const env = StreamEnvironment.create({ name: "prefuse", nats: server.url });
  const keyed = env.fromSource(Sources.array([{ k: "a", n: 1 }])).keyBy((h) => h.k);
  assert.throws(() => keyed.window(TumblingProcessingTimeWindows.of(1000)).allowedLateness(100), /window\(\)\.allowedLateness\(\): processing-time windows have no late records/);
  assert.throws(() => keyed.window(TumblingProcessingTimeWindows.of(1000)).sideOutputLateData(outputTag("late")), /window\(\)\.sideOutputLateData\(\): processing-time windows have no late records/);
  keyed.window(TumblingProcessingTimeWindows.of(1000)).allowedLateness(0);
  keyed.window(EventTimeSessionWindows.withGap(10)).allowedLateness(5);
  assert.throws(() => keyed.window({ ...TumblingProcessingTimeWindows.of(1000), timeDomain: "wallclock" as never }), /timeDomain must be "event" or "processing", got "wallclock"/);
  assert.throws(() => TumblingProcessingTimeWindows.of(0), /TumblingProcessingTimeWindows\.of: size must be a positive integer/);
  assert.throws(() => ProcessingTimeSessionWindows.withGap(-1), /ProcessingTimeSessionWindows\.withGap: gap must be a positive integer/);
});

test.run();
