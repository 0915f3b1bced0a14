// End-to-end jobs on a real nats-server: what a user of the DataStream API checks.
import { suite } from "uvu";
import * as assert from "uvu/assert";
import * as t from "io-ts";
import { outputTag, Sources, StreamEnvironment, UserFunctionError, valueState, WatermarkStrategy, type JobOptions, type KeyedStateBackend, NOT_APPLIED, type PendingStateRequest } from "../mod.ts";
import { withServer } from "./helpers/nats-server.ts";

const e2e = suite("runtime end to end");
const nats = withServer(e2e);

function env(name: string, extra: Partial<JobOptions> = {}): StreamEnvironment {
  return StreamEnvironment.create({ name, nats: nats.url, ...extra });
}

async function withEnv<T>(e: StreamEnvironment, f: (e: StreamEnvironment) => Promise<T>): Promise<T> {
  try { return await f(e); } finally { await e.close(); }
}

const sorted = <T>(xs: T[]) => [...xs].sort((a, b) => JSON.stringify(a).localeCompare(JSON.stringify(b)));

e2e("map, filter and flatMap across a rebalance and a keyBy exchange", async () => {
  const out = await withEnv(env("stateless", { parallelism: 3 }), (e) =>
    e.fromSource(Sources.array(["a b", "c d e", "", "f"]))
      .flatMap((line: string) => line.split(" ").filter(Boolean))
      .map((w) => w.toUpperCase())
      .filter((w) => w !== "C")
      .keyBy((w) => w)
      .map((w) => `${w}!`)
      .executeAndCollect());
  assert.equal(sorted(out), ["A!", "B!", "D!", "E!", "F!"]);
});

const count = valueState("count", t.number);
const counting = {
  async processElement(word: string, ctx: { state: (d: typeof count) => { value(): Promise<number | undefined>; update(n: number): Promise<void> }; collect(o: unknown): void; key: unknown }) {
    const n = ((await ctx.state(count).value()) ?? 0) + 1;
    await ctx.state(count).update(n);
    ctx.collect({ word: ctx.key, n });
  },
};

for (const [backend, asyncEnabled] of [["heap", true], ["heap", false], ["jetstream-kv", true], ["jetstream-kv", false]] as const) {
  e2e(`keyed counts are exact and in per-key order (${backend}, async ${asyncEnabled})`, async () => {
    const words = Array.from({ length: 3000 }, (_, i) => `w${(i * 7919) % 101}`);
    const out = await withEnv(env(`count-${backend}-${asyncEnabled}`.replace(/[^a-z0-9-]/g, ""), { parallelism: 2, stateBackend: backend, asyncState: { enabled: asyncEnabled } }), (e) =>
      e.fromSource(Sources.array(words)).keyBy((w) => w).process(counting as never).executeAndCollect()) as Array<{ word: string; n: number }>;
    assert.is(out.length, words.length);
    const seen = new Map<string, number>();
    for (const o of out) {
      const prev = seen.get(o.word) ?? 0;
      assert.is(o.n, prev + 1, `counts of ${o.word} arrive in order`);
      seen.set(o.word, o.n);
    }
    const expected = new Map<string, number>();
    for (const w of words) expected.set(w, (expected.get(w) ?? 0) + 1);
    assert.equal(new Map([...seen].sort()), new Map([...expected].sort()));
  });
}

e2e("timers in a process that is not keyed: one line saying they need keyBy", async () => {
  const error = await withEnv(env("unkeyedtimers", { stateBackend: "heap" }), (e) =>
    e.fromSource(Sources.array([1]), { name: "one" })
      .process<number>({ processElement(_v, ctx) { (ctx as unknown as { timers: { registerEventTimeTimer(t: number): void } }).timers.registerEventTimeTimer(5); } }, { name: "unkeyed" })
      .executeAndCollect().then(() => "finished", (err: Error) => err.message));
  assert.match(error, /operator "unkeyed" \(subtask 0\) failed: timers need a keyed stream: keyBy\(\.\.\.\) before process\(\.\.\.\)/);
});

e2e("union and connect", async () => {
  const out = await withEnv(env("union-connect", { parallelism: 2 }), (e) => {
    const a = e.fromSource(Sources.array([1, 2, 3]));
    const b = e.fromSource(Sources.array([10, 20]));
    const labels = e.fromSource(Sources.array(["x", "y"]));
    return a.union(b).connect(labels).map((n) => `n${n}`, (s) => `s${s}`).executeAndCollect();
  });
  assert.equal(sorted(out), ["n1", "n10", "n2", "n20", "n3", "sx", "sy"]);
});

e2e("side outputs", async () => {
  const odd = outputTag<number>("odd");
  const out = await withEnv(env("side"), async (e) => {
    const main = e.fromSource(Sources.array([1, 2, 3, 4, 5])).process<number>({
      processElement(n, ctx) { if (n % 2) ctx.output(odd, n); else ctx.collect(n); },
    });
    return main.union(main.getSideOutput(odd).map((n) => -n)).executeAndCollect();
  });
  assert.equal(sorted(out), sorted([2, 4, -1, -3, -5]));
});

e2e("event-time timers fire in order at the watermark; the final watermark fires the rest", async () => {
  const events = [{ k: "a", ts: 1000 }, { k: "b", ts: 1500 }, { k: "a", ts: 3000 }, { k: "a", ts: 9000 }];
  const out = await withEnv(env("timers", { parallelism: 2 }), (e) =>
    e.fromSource(Sources.array(events))
      .assignTimestampsAndWatermarks(WatermarkStrategy.forMonotonousTimestamps<{ k: string; ts: number }>((x) => x.ts))
      .keyBy((x) => x.k)
      .process<string>({
        processElement(x, ctx) { ctx.timers.registerEventTimeTimer(x.ts + 500); ctx.timers.registerEventTimeTimer(x.ts + 500); },
        onTimer(ts, ctx) { ctx.collect(`${ctx.key}@${ts}`); },
      })
      .executeAndCollect());
  assert.equal(sorted(out), ["a@1500", "a@3500", "a@9500", "b@2000"], "one firing per (key, time), all fired");
  const aOrder = out.filter((s) => s.startsWith("a@"));
  assert.equal(aOrder, ["a@1500", "a@3500", "a@9500"], "same-key timers in timestamp order");
});

e2e("a keyed function sees its own record's key, value and timestamp across awaits, some records waiting on I/O", async () => {
  // Record contexts are reused once a record finished: one reused early would show another record's fields.
  const n = 3000;
  const events = Array.from({ length: n }, (_, i) => ({ id: i, k: `k${(i * 7) % 97}`, ts: 10 * i }));
  const run = withEnv(env("contexts", { parallelism: 2, mode: "streaming" }), (e) =>
    e.fromSource(Sources.array(events))
      .assignTimestampsAndWatermarks(WatermarkStrategy.forMonotonousTimestamps<{ id: number; k: string; ts: number }>((x) => x.ts))
      .keyBy((x) => x.k)
      .process<string>({
        async processElement(x, ctx) {
          const seen = ((await ctx.state(count).value()) ?? 0) + 1;
          if (x.id % 10 === 0) await new Promise((r) => setTimeout(r, 1));
          await ctx.state(count).update(seen);
          ctx.collect(`${x.id}:${ctx.key === x.k}:${ctx.timestamp === x.ts}`);
        },
      })
      .executeAndCollect());
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_, reject) => { timer = setTimeout(() => reject(new Error("the job did not finish within 60 s (records never finishing: a context reused while in use?)")), 60_000); });
  const out = await Promise.race([run, deadline]).finally(() => clearTimeout(timer));
  assert.is(out.length, n);
  const wrong = out.filter((s) => !s.endsWith(":true:true"));
  assert.equal(wrong.slice(0, 5), [], `records that saw another record's key or timestamp: ${wrong.length}`);
  assert.equal(new Set(out.map((s) => s.split(":")[0])).size, n, "each record once");
});

e2e("a throwing user function fails the job with operator, subtask and key in the message", async () => {
  const e = env("failing", { parallelism: 2, stateBackend: "heap" });
  try {
    await e.fromSource(Sources.array(["ok", "boom", "ok2"]))
      .keyBy((w) => w)
      .process({ processElement(w: string) { if (w === "boom") throw new Error("cannot handle boom"); } }, { name: "picky" })
      .executeAndCollect();
    assert.unreachable("the job should fail");
  } catch (err) {
    assert.instance(err, UserFunctionError);
    assert.match((err as Error).message, /operator "picky" \(subtask \d\) failed for key "boom": cannot handle boom/);
  } finally {
    await e.close();
  }
});

e2e("a keyed subtask whose state backend stops answering reports the stall (status and log), and recovers", async () => {
  const logs: string[] = [];
  let answering = true;
  const parked: Array<() => void> = [];
  const stalling = (backend: KeyedStateBackend): KeyedStateBackend => Object.assign(Object.create(backend) as KeyedStateBackend, {
    tryNow: () => NOT_APPLIED,
    executeBatch: (requests: readonly PendingStateRequest[]) => (answering ? backend.executeBatch(requests) : new Promise<void>((resolve) => parked.push(() => resolve(backend.executeBatch(requests))))),
  });
  const e = StreamEnvironment.create({ name: "stalling", nats: nats.url, parallelism: 1, stateBackend: "heap", asyncState: { stallTimeoutMs: 400 } }, { log: (l) => logs.push(l), wrapStateBackend: stalling });
  try {
    let counted = 0;
    e.fromSource(Sources.generator({ ratePerSec: 2000, make: (i) => `k${i % 10}` })).keyBy((w) => w).process(counting as never, { name: "counter" })
      .sinkTo({ kind: "count", createWriter: async () => ({ write: () => { counted++; }, flush: async () => {}, close: async () => {} }) });
    const client = await e.executeAsync();
    const stalledFlag = () => Object.values(client.status().subtasks.find((st) => st.name.includes("counter"))?.operators ?? {}).find((m) => m.stalled !== undefined)?.stalled;
    while (counted < 100) await new Promise((r) => setTimeout(r, 20));
    assert.is(stalledFlag(), 0, "not stalled while the backend answers");
    answering = false;
    const deadline = Date.now() + 5000;
    while (stalledFlag() !== 1) {
      assert.ok(Date.now() < deadline, "the stall was reported within 5 s");
      await new Promise((r) => setTimeout(r, 50));
    }
    assert.ok(logs.some((l) => /operator "counter" subtask 0: \d+ records in flight, none finished for 400 ms \(a processElement or onTimer that never settles, or a state backend not answering\?\)/.test(l)), logs.join("\n"));
    answering = true;
    for (const wake of parked.splice(0)) wake();
    const before = counted;
    while (counted <= before + 100 || stalledFlag() !== 0) {
      assert.ok(Date.now() < deadline + 5000, "it recovered once the backend answered");
      await new Promise((r) => setTimeout(r, 50));
    }
    await client.cancel();
  } finally {
    await e.close();
  }
});

e2e("a slow consumer backpressures a fast source through credits: nothing lost, queues bounded", async () => {
  const total = 20_000;
  const e = env("backpressure", { parallelism: 2, stateBackend: "heap", frameSize: 100, creditWindow: 4 });
  let maxQueued = 0;
  let maxPending = 0;
  const seen = new Set<number>();
  try {
    e.fromSource(Sources.generator({ count: total, make: (i) => i }), { name: "fast" })
      .keyBy((i) => i % 7)
      .process<number>({
        async processElement(i, ctx) {
          if (i % 500 === 0) await new Promise((r) => setTimeout(r, 15)); // a slow subtask
          ctx.collect(i);
        },
      }, { name: "slow" })
      .sinkTo({ kind: "test", createWriter: async () => ({ write: (i: number) => { seen.add(i); }, flush: async () => {}, close: async () => {} }) });
    const client = await e.executeAsync();
    const sampler = setInterval(() => {
      for (const s of client.status().subtasks) {
        maxQueued = Math.max(maxQueued, s.queuedFrames);
        maxPending = Math.max(maxPending, s.pendingFrames);
      }
    }, 5);
    const result = await client.result();
    clearInterval(sampler);
    assert.is(seen.size, total, "every record arrived exactly once");
    const source = result.status.subtasks.filter((s) => s.name.startsWith("fast"));
    assert.ok(source.some((s) => s.backpressuredMs > 0), "the source waited for credit");
    assert.ok(maxQueued <= 2 * 4 + 2, `a consumer never holds more than its credit window per channel (saw ${maxQueued})`);
  } finally {
    await e.close();
  }
});

e2e.run();
