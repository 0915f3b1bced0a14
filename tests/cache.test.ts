// DataStream.cache() (FLIP-205) on a real nats-server: the first execution computes a cached stream and
// keeps it, later executions of the environment read it instead of computing it again, invalidate()
// and close() drop it; each execution runs only the sinks defined since the previous one.
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { connect } from "@nats-io/transport-node";
import { jetstreamManager } from "@nats-io/jetstream";
import { outputTag, Sources, StreamEnvironment, TumblingEventTimeWindows, WatermarkStrategy, type JobOptions, type SinkDef } from "../mod.ts";
import { withServer } from "./helpers/nats-server.ts";

const cache = suite("cache");
const nats = withServer(cache);

interface Reading { sensor: string; ts: number; value: number }

const readings = (n: number): Reading[] => Array.from({ length: n }, (_, i) => ({ sensor: `s${i % 7}`, ts: i * 10, value: (i * 37) % 101 }));

function env(name: string, extra: Partial<JobOptions> = {}): StreamEnvironment {
  return StreamEnvironment.create({ name, nats: nats.url, parallelism: 2, mode: "batch", ...extra }, { log: () => {} });
}

async function cacheStreams(): Promise<string[]> {
  const nc = await connect({ servers: nats.url });
  try {
    const names: string[] = [];
    for await (const s of (await jetstreamManager(nc)).streams.list()) if (s.config.name.includes("_cache_")) names.push(s.config.name);
    return names;
  } finally {
    await nc.close();
  }
}

const sum = (xs: number[]) => xs.reduce((a, b) => a + b, 0);

cache("a cached stream is computed once: later executions read it back, with the same records and timestamps", async () => {
  const e = env("cached");
  const input = readings(3000);
  let computed = 0;
  try {
    const enriched = e.fromSource(Sources.array(input), { parallelism: 2 })
      .assignTimestampsAndWatermarks(WatermarkStrategy.forMonotonousTimestamps<Reading>((r) => r.ts))
      .map((r) => { computed++; return { ...r, value: r.value * 2 }; })
      .cache();

    const first = await enriched.executeAndCollect();
    assert.is(first.length, 3000);
    assert.is(computed, 3000, "computed by the first execution");
    assert.is((await cacheStreams()).length, 1, "kept in a JetStream stream");

    const evens = await enriched.filter((r) => r.value % 4 === 0).executeAndCollect();
    assert.is(computed, 3000, "a later execution reads the cache: nothing upstream runs again");
    assert.equal(evens.map((r) => r.ts).sort((a, b) => a - b), input.filter((r) => (r.value * 2) % 4 === 0).map((r) => r.ts));

    // Event time survives the cache: 1 s windows over the cached records give what the input gives.
    const windows = await enriched.keyBy((r) => r.sensor).window(TumblingEventTimeWindows.of(1000))
      .aggregate({ createAccumulator: () => 0, add: (r: Reading, acc: number) => acc + r.value, getResult: (acc: number) => acc })
      .executeAndCollect();
    assert.is(computed, 3000);
    assert.is(sum(windows), sum(input.map((r) => r.value * 2)), "every record in some window");
    const expectedWindows = new Set(input.map((r) => `${r.sensor}@${Math.floor(r.ts / 1000)}`)).size;
    assert.is(windows.length, expectedWindows, "one result per sensor and second: the timestamps came back");

    await enriched.invalidate();
    const again = await enriched.executeAndCollect();
    assert.is(again.length, 3000);
    assert.is(computed, 6000, "after invalidate() the stream is computed again");
    await enriched.executeAndCollect();
    assert.is(computed, 6000, "and cached again");
  } finally {
    await e.close();
  }
  assert.equal(await cacheStreams(), [], "close() deletes the cached streams");
});

cache("a stopped or failed execution leaves no cache behind: the next one computes the stream in full", async () => {
  const e = env("cut-short", { parallelism: 1 });
  let computed = 0;
  let fail = true;
  try {
    const cached = e.fromSource(Sources.array(readings(5000)))
      .map((r) => { computed++; return r.value; })
      .cache();
    const some = await cached.executeAndCollect({ limit: 10 });
    assert.ok(some.length >= 10);
    cached.map((v) => { if (fail) throw new Error("boom"); return v; }).sinkTo({ kind: "discard", createWriter: async () => ({ write: () => {}, flush: async () => {}, close: async () => {} }) });
    try {
      await e.execute();
      assert.unreachable("the job fails");
    } catch (err) {
      assert.match((err as Error).message, /boom/);
    }
    fail = false;
    const before = computed;
    const all = await cached.executeAndCollect();
    assert.is(all.length, 5000, "every record, none from the cut-short runs");
    assert.is(computed - before, 5000, "computed again in full");
  } finally {
    await e.close();
  }
});

cache("each execution runs the sinks defined since the previous one", async () => {
  const e = env("sinks-once");
  const writes = { a: 0, b: 0 };
  const counting = (k: "a" | "b"): SinkDef<number> => ({ kind: `count-${k}`, createWriter: async () => ({ write: () => { writes[k]++; }, flush: async () => {}, close: async () => {} }) });
  try {
    const numbers = e.fromSource(Sources.array([1, 2, 3, 4]));
    numbers.sinkTo(counting("a"));
    await e.execute();
    numbers.map((n) => n * 10).sinkTo(counting("b"));
    await e.execute();
    assert.equal(writes, { a: 4, b: 4 }, "the first sink did not run again");
    try {
      await e.execute();
      assert.unreachable("nothing left to run");
    } catch (err) {
      assert.match((err as Error).message, /nothing new to run/);
    }
  } finally {
    await e.close();
  }
});

cache("cache() needs batch mode and an operator or source output, with a one-line reason", () => {
  const streaming = StreamEnvironment.create({ name: "streaming-cache", nats: nats.url, mode: "streaming" });
  assert.throws(() => streaming.fromSource(Sources.array([1])).cache(), /cache\(\): cached streams need mode "batch" \(FLIP-205\); this job runs in mode "streaming"/);
  const batch = env("keyed-cache");
  assert.throws(() => batch.fromSource(Sources.array([1])).keyBy((n) => n).cache(), /cache the output of a source or an operator/);
  assert.throws(() => batch.fromSource(Sources.array([1])).map((n) => n).cache().cache(), /cache\(\): .*\(the stream is cached already: use it as it is\)$/);
});

cache("a side output is cached as an operator's output is: a later execution reads it and runs nothing upstream", async () => {
  // It was refused: "cache the output of a source or an operator (a keyBy, union or rebalance only moves records...)".
  const e = env("cached-side");
  let computed = 0;
  try {
    const odd = outputTag<number>("odd");
    const split = e.fromSource(Sources.array(Array.from({ length: 100 }, (_, i) => i))).process<number>({
      processElement(n, ctx) { computed++; if (n % 2) ctx.output(odd, n); else ctx.collect(n); },
    });
    const odds = split.getSideOutput(odd).cache();
    assert.equal((await odds.executeAndCollect()).sort((a, b) => a - b), Array.from({ length: 50 }, (_, i) => 2 * i + 1));
    assert.is(computed, 100);
    assert.is(sum(await odds.map((n) => n * 10).executeAndCollect()), 25_000, "read back from the cache");
    assert.is(computed, 100, "the operator did not run again");
  } finally {
    await e.close();
  }
});

cache("mode automatic (the default): a cache works when the job runs in batch mode, and is refused at launch when it does not", async () => {
  const bounded = StreamEnvironment.create({ name: "automatic-cache", nats: nats.url, stateBackend: "heap" });
  try {
    const doubled = bounded.fromSource(Sources.array([1, 2, 3])).map((n) => n * 2).cache();
    assert.equal((await doubled.executeAndCollect()).sort(), [2, 4, 6]);
    assert.equal((await doubled.map((n) => n + 1).executeAndCollect()).sort(), [3, 5, 7], "the second execution reads the cache");
  } finally {
    await bounded.close();
  }
  const checkpointed = StreamEnvironment.create({ name: "automatic-cache-ck", nats: nats.url, stateBackend: "heap", checkpointIntervalMs: 1000 });
  try {
    const cached = checkpointed.fromSource(Sources.array([1])).map((n) => n).cache();
    const e = await cached.executeAndCollect().then(() => undefined, (err: unknown) => err as Error);
    assert.ok(e, "a launch that runs in streaming mode refuses its cached streams");
    assert.match(e.message, /cache\(\): cached streams need batch mode \(FLIP-205\); mode "automatic" does not run this job in batch mode, because it takes checkpoints/);
  } finally {
    await checkpointed.close();
  }
});

cache.run();
