// DataStream semantics a Flink user relies on, whatever the chaining: side outputs belong to the operator
// that emits them, two keyed streams connected are keyed, a reduce may modify and return its first
// argument, user errors name their operator, and options and arguments are checked.
import { suite } from "uvu";
import * as assert from "uvu/assert";
import * as t from "io-ts";
import { outputTag, Sinks, Sources, StreamEnvironment, valueState, WatermarkStrategy, type JobOptions, type SinkDef, type SourceDef } from "../mod.ts";
import { withServer } from "./helpers/nats-server.ts";
import { within } from "./helpers/cli.ts";

const s = suite("DataStream semantics");
const nats = withServer(s);
let jobs = 0;

async function withEnv<T>(options: Partial<JobOptions>, f: (env: StreamEnvironment) => Promise<T>): Promise<T> {
  const env = StreamEnvironment.create({ name: `sem${jobs++}`, nats: nats.url, parallelism: 1, stateBackend: "heap", ...options });
  try { return await f(env); } finally { await env.close(); }
}

for (const chained of [true, false]) {
  s(`an operator's side output is its own: a downstream operator's getSideOutput of the same tag is empty (${chained ? "chained" : "not chained"})`, async () => {
    const odd = outputTag<number>("odd");
    const out = await withEnv({}, async (env) => {
      const p = env.fromSource(Sources.array([1, 2, 3, 4, 5])).process<number>({ processElement(v, ctx) { if (v % 2) ctx.output(odd, v * 10); ctx.collect(v); } });
      const m = p.map((x) => x + 1000, chained ? {} : { parallelism: 2 });
      // Nothing reads p's side output: only m's, of the same tag, which m never emits.
      return await m.map((x) => `main:${x}`).union(m.getSideOutput(odd).map((x) => `m:${x}`)).executeAndCollect();
    });
    assert.equal([...out].sort(), ["main:1001", "main:1002", "main:1003", "main:1004", "main:1005"]);
  });
}

s("keyed.connect(keyed).process is keyed: state per key across both inputs", async () => {
  const total = valueState("total", t.number);
  const out = await withEnv({ parallelism: 2 }, async (env) => {
    const a = env.fromSource(Sources.array([{ k: "a", v: 1 }, { k: "b", v: 2 }, { k: "a", v: 3 }])).keyBy((x) => x.k);
    const b = env.fromSource(Sources.array([{ id: "a", v: 10 }, { id: "b", v: 20 }])).keyBy((y) => y.id);
    const add = async (v: number, ctx: any) => {
      const n = ((await ctx.state(total).value()) ?? 0) + v;
      await ctx.state(total).update(n);
      ctx.collect({ key: ctx.key, n });
    };
    return await a.connect(b).process<{ key: string; n: number }>({
      processElement1: (x, ctx) => add(x.v, ctx),
      processElement2: (y, ctx) => add(y.v, ctx),
    }).executeAndCollect();
  });
  const final = new Map<string, number>();
  for (const o of out) final.set(o.key, Math.max(final.get(o.key) ?? 0, o.n));
  assert.equal(Object.fromEntries([...final].sort()), { a: 14, b: 22 });
});

s("a reduce that modifies and returns its first argument emits each running value, chained or not", async () => {
  for (const parallelism of [1, 2]) {
    const out = await withEnv({ mode: "streaming" }, async (env) => env.fromSource(Sources.array([1, 2, 3, 4].map(() => ({ k: "a", n: 1 }))))
      .keyBy((x) => x.k)
      .reduce((a, b) => { a.n += b.n; return a; })
      .map((x) => x.n, { parallelism })
      .executeAndCollect());
    assert.equal([...out].sort(), [1, 2, 3, 4], `next operator at parallelism ${parallelism}`);
  }
});

s("an aggregate whose accumulator is not JSON data fails in one line naming the operator and the field", async () => {
  const err = await withEnv({}, async (env) => env.fromSource(Sources.array(["x", "y", "x"]))
    .keyBy((w) => w)
    .aggregate<{ seen: Set<string> }, number>({
      createAccumulator: () => ({ seen: new Set() }),
      add: (w, acc) => { acc.seen.add(w); return acc; },
      getResult: (acc) => acc.seen.size,
    }, { name: "distinct" })
    .executeAndCollect()).then(() => "no error", (e: Error) => e.message);
  assert.match(err, /operator "distinct".*accumulator must be JSON data.*\.seen is a Set/);
});

s("user errors name the operator: open(), a generator in flatMap, an async map, keyed state without keyBy, an undefined key", async () => {
  const failures = [
    (env: StreamEnvironment) => env.fromSource(Sources.array([1])).process({ open() { throw new Error("boom-open"); }, processElement() {} }, { name: "opener" }),
    (env: StreamEnvironment) => env.fromSource(Sources.array([1])).flatMap(function* (x) { yield x; throw new Error("gen-boom"); }, { name: "gen" }),
    (env: StreamEnvironment) => env.fromSource(Sources.array([1])).map(async (x) => x, { name: "asyncmap" }),
    (env: StreamEnvironment) => env.fromSource(Sources.array([1])).process({ async processElement(_v, ctx: any) { await ctx.state(valueState("v", t.number)).value(); } }, { name: "unkeyed" }),
    (env: StreamEnvironment) => env.fromSource(Sources.array([{ k: 1 }]), { name: "records" }).keyBy((r: { k: number }) => (r as { key?: string }).key).reduce((a) => a),
  ];
  const expected = [/operator "opener".*boom-open/, /operator "gen".*gen-boom/, /operator "asyncmap".*map function returned a Promise/, /operator "unkeyed".*state\(\.\.\.\) needs a keyed stream/, /operator "records \(keyBy\)".*the key selector returned undefined/];
  for (const [i, build] of failures.entries()) {
    const message = await withEnv({}, async (env) => build(env).executeAndCollect()).then(() => "no error", (e: Error) => e.message);
    assert.match(message, expected[i]!);
  }
});

s("an async function that throws where a value is due (map, filter, flatMap, keyBy, timestamps, reduce) fails its operator, and its rejection does not end the process", async () => {
  const bug = async (): Promise<never> => { throw new Error("async bug"); };
  const failures = [
    (env: StreamEnvironment) => env.fromSource(Sources.array([1])).map(bug as never, { name: "m" }),
    (env: StreamEnvironment) => env.fromSource(Sources.array([1])).filter(bug as never, { name: "f" }),
    (env: StreamEnvironment) => env.fromSource(Sources.array([1])).flatMap(bug as never, { name: "fm" }),
    (env: StreamEnvironment) => env.fromSource(Sources.array([1]), { name: "src" }).keyBy(bug as never).reduce((a) => a),
    (env: StreamEnvironment) => env.fromSource(Sources.array([1])).assignTimestampsAndWatermarks(WatermarkStrategy.forMonotonousTimestamps(bug as never), { name: "ts" }),
    (env: StreamEnvironment) => env.fromSource(Sources.array([1, 2])).keyBy(() => "k").reduce(bug as never, { name: "r" }),
  ];
  const expected = [/operator "m"/, /operator "f"/, /operator "fm"/, /operator "src \(keyBy\)"/, /operator "ts"/, /operator "r"/];
  const unhandled: unknown[] = [];
  const onUnhandled = (e: unknown) => { unhandled.push(e); };
  process.on("unhandledRejection", onUnhandled);
  try {
    for (const [i, build] of failures.entries()) {
      const message = await withEnv({}, async (env) => build(env).executeAndCollect()).then(() => "no error", (e: Error) => e.message);
      assert.match(message, expected[i]!);
    }
    await new Promise((r) => setTimeout(r, 50));
    assert.equal(unhandled.map((e) => (e as Error).message), []);
  } finally {
    process.off("unhandledRejection", onUnhandled);
  }
});

s("a close() that throws fails the job naming its operator, and the operators after it in the chain are still closed (a sink's writer)", async () => {
  let sinkClosed = 0;
  const message = await withEnv({}, async (env) => {
    env.fromSource(Sources.array([1, 2])).process({ processElement(v, ctx) { ctx.collect(v); }, close() { throw new Error("close bug"); } }, { name: "closer" })
      .sinkTo({ kind: "counting", createWriter: async () => ({ write: () => {}, flush: async () => {}, close: async () => { sinkClosed++; } }) });
    await env.execute();
  }).then(() => "no error", (e: Error) => e.message);
  assert.match(message, /operator "closer" \(subtask 0\) failed: close bug/);
  assert.is(sinkClosed, 1);
});

s("a custom source's or sink's own error names its operator and subtask (createReader, pollNext, createWriter, write, flush, close)", async () => {
  const bug = (where: string) => { throw new Error(`bug in ${where}`); };
  const source = (where: string): SourceDef<number> => ({ kind: "mine", bounded: true, createReader: async () => (where === "createReader" ? bug(where) : { pollNext: async () => bug(where), close: async () => {} }) });
  const sink = (where: string): SinkDef<number> => ({ kind: "mine", createWriter: async () => (where === "createWriter" ? bug(where) : {
    write: async () => { if (where === "write") bug(where); }, flush: async () => { if (where === "flush") bug(where); }, close: async () => { if (where === "close") bug(where); },
  }) });
  for (const where of ["createReader", "pollNext"]) {
    const message = await withEnv({}, async (env) => env.fromSource(source(where), { name: "my-source" }).executeAndCollect()).then(() => "no error", (e: Error) => e.message);
    assert.is(message, `operator "my-source" (subtask 0) failed: bug in ${where}`);
  }
  for (const where of ["createWriter", "write", "flush", "close"]) {
    const message = await withEnv({}, async (env) => { env.fromSource(Sources.array([1])).sinkTo(sink(where), { name: "my-sink" }); await env.execute(); }).then(() => "no error", (e: Error) => e.message);
    assert.is(message, `operator "my-sink" (subtask 0) failed: bug in ${where}`);
  }
});

s("env.close() called twice at once: both settle", async () => {
  const env = StreamEnvironment.create({ name: `sem${jobs++}`, nats: nats.url, stateBackend: "heap" });
  await env.connection();
  const both = await within(Promise.all([env.close(), env.close()]), 20_000);
  assert.ok(both !== undefined, "a close never settled");
});

s("JobClient.stop refuses an unknown option; watermark and operator-name arguments are checked", async () => {
  await withEnv({}, async (env) => {
    env.fromSource(Sources.generator({ ratePerSec: 10, make: (i) => i })).sinkTo(Sinks.nats({ subject: "sem.stop" }));
    const client = await env.executeAsync();
    try {
      const refused = await client.stop({ savepiont: true } as never).then(() => "stopped", (e: Error) => e.message);
      assert.match(refused, /savepiont/);
    } finally {
      await client.cancel();
    }
  });
  assert.throws(() => WatermarkStrategy.boundedOutOfOrderness("5" as never), /finite non-negative delay.*"5"/);
  assert.throws(() => WatermarkStrategy.boundedOutOfOrderness(Infinity), /finite non-negative delay/);
  assert.throws(() => WatermarkStrategy.forMonotonousTimestamps().withIdleness(Infinity), /finite positive duration/);
  await withEnv({}, async (env) => {
    assert.throws(() => env.fromSource(Sources.array([1])).map((x) => x, { name: "" }), /name/);
  });
});

s.run();
