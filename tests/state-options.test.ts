// The job option `state` reaches the KV state backend whole, and its options take effect in real jobs on
// a real nats-server: the cache bound (dirty entries counted), the dirty budget, the value size limit.
import { suite } from "uvu";
import * as assert from "uvu/assert";
import * as t from "io-ts";
import { Sources, StreamEnvironment, valueState, type JobOptions, type KeyedStateBackend, type StateBackendMetrics } from "../mod.ts";
import { withServer } from "./helpers/nats-server.ts";
import { formatStatus } from "../runtime/cli/commands/control.ts";
import { eventually } from "./helpers/cli.ts";

const s = suite("job option state");
const nats = withServer(s);

const count = valueState("count", t.number);
const blob = valueState("blob", t.string);

interface Observed { readonly max: { -readonly [K in keyof StateBackendMetrics]: number }; config: Record<string, unknown> | undefined }

/** Runs `keys` distinct keys through a keyed counter, sampling the backend's metrics after every batch. */
async function runCounter(name: string, keys: number, options: Partial<JobOptions>, value?: (i: number) => string): Promise<Observed> {
  const observed: Observed = { max: {} as Observed["max"], config: undefined };
  const sample = (b: KeyedStateBackend) => {
    const m = b.metrics();
    for (const [k, v] of Object.entries(m) as Array<[keyof StateBackendMetrics, number]>) observed.max[k] = Math.max(observed.max[k] ?? 0, v);
  };
  // mode "streaming": a bounded job without checkpoints would run in batch mode, which keeps each key's
  // state in memory and never reaches the state backend these options tune.
  const env = StreamEnvironment.create({ name, nats: nats.url, parallelism: 1, mode: "streaming", ...options }, {
    wrapStateBackend: (b) => {
      // The backend's resolved configuration: what the job passed through.
      observed.config = (b as unknown as { config: Record<string, unknown> }).config;
      const batch = b.executeBatch.bind(b);
      b.executeBatch = async (requests) => { await batch(requests); sample(b); };
      // Requests answered at once (cached or known-absent keys) never make a batch: sample those too.
      const now = b.tryNow.bind(b);
      b.tryNow = (request) => { const r = now(request); sample(b); return r; };
      return b;
    },
  });
  try {
    await env.fromSource(Sources.array(Array.from({ length: keys }, (_, i) => i)))
      .keyBy((i) => i)
      .process<number>({
        async processElement(i, ctx) {
          if (value) await ctx.state(blob).update(value(i));
          else await ctx.state(count).update(((await ctx.state(count).value()) ?? 0) + 1);
          ctx.collect(i);
        },
      })
      .executeAndCollect();
  } finally {
    await env.close();
  }
  return observed;
}

const asyncState = { bufferSize: 50, inFlightRecordsLimit: 100 };

s("every state option reaches the backend", async () => {
  const state = {
    cacheMaxEntries: 1111, cacheMaxBytes: 2_222_222, dirtyMaxEntries: 333, dirtyMaxBytes: 444_444, flushIntervalMs: 555,
    materializeIntervalMs: 666, getConcurrency: 77, putConcurrency: 88, maxValueBytes: 999_999, requestTimeoutMs: 12_345,
  };
  const o = await runCounter("state-pass", 10, { state });
  assert.ok(o.config, "the KV backend was created");
  for (const [k, v] of Object.entries(state)) assert.is(o.config![k], v, `state.${k}`);
  assert.is(o.config!.durability, "flush", "no checkpoints: durability flush");
});

s("cacheMaxEntries bounds the cache with dirty entries counted (no checkpoints)", async () => {
  const o = await runCounter("state-cap", 4000, { state: { cacheMaxEntries: 1000, flushIntervalMs: 0 }, asyncState });
  // Over by at most the records in flight (each touches one key).
  assert.ok(o.max.cacheEntries <= 1000 + asyncState.inFlightRecordsLimit, `cache held ${o.max.cacheEntries} entries, bound 1000`);
  assert.ok(o.max.evictions > 0 && o.max.flushes > 0, "room was made by flushing and evicting");
});

s("cacheMaxBytes bounds the cache's bytes with dirty entries counted", async () => {
  const o = await runCounter("state-bytes", 2000, { state: { cacheMaxBytes: 200_000, flushIntervalMs: 0 }, asyncState }, (i) => `v${i}`.padEnd(300, "x"));
  const perEntry = 600; // overhead, key and a 300-character value, generously
  assert.ok(o.max.cacheBytes <= 200_000 + asyncState.inFlightRecordsLimit * perEntry, `cache held ${o.max.cacheBytes} bytes, bound 200000`);
  assert.ok(o.max.evictions > 0);
});

s("dirtyMaxEntries starts flushes during the run; a larger budget does not", async () => {
  const small = await runCounter("state-dirty-s", 1500, { state: { dirtyMaxEntries: 100, flushIntervalMs: 0 }, asyncState });
  const large = await runCounter("state-dirty-l", 1500, { state: { dirtyMaxEntries: 100_000, flushIntervalMs: 0 }, asyncState });
  assert.ok(small.max.flushes >= 2, `flushes during the run with a budget of 100: ${small.max.flushes}`);
  assert.is(large.max.flushes, 0, "nothing over budget, no timer: no flush before close");
  assert.ok(small.max.dirtyEntries <= 2 * 100 + asyncState.inFlightRecordsLimit, `dirty entries ${small.max.dirtyEntries}`);
});

s("maxValueBytes refuses a larger value, naming the limit", async () => {
  const err = await runCounter("state-maxval", 3, { state: { maxValueBytes: 1000 } }, () => "x".repeat(2000)).then(() => undefined, (e: Error) => e);
  assert.ok(err, "the job fails");
  assert.match(err!.message, /more than maxValueBytes 1000/);
});

s("weir status shows the keyed subtask's state cache: entries, bytes, hit ratio", async () => {
  const env = StreamEnvironment.create({ name: "state-status", nats: nats.url, parallelism: 1, mode: "streaming" });
  try {
    const stream = env.fromSource(Sources.array(Array.from({ length: 300 }, (_, i) => i % 100)))
      .keyBy((i) => i)
      .process<number>({ async processElement(i, ctx) { await ctx.state(count).update(((await ctx.state(count).value()) ?? 0) + 1); ctx.collect(i); } }, { name: "counter" });
    stream.sinkTo({ kind: "discard", async createWriter() { return { write() {}, async flush() {}, async close() {} }; } });
    const client = await env.executeAsync();
    const result = await client.result();
    const counter = result.status.subtasks.find((t) => t.name.includes("counter"))!;
    const m = Object.values(counter.operators).find((o) => o.cacheEntries !== undefined);
    assert.ok(m, "the keyed operator reports its state cache");
    const text = formatStatus(result.status);
    const line = text.split("\n").find((l) => l.includes("counter"))!;
    assert.match(line, /\d+ entries \d+ KiB, \d+% hits \(\d+\/\d+\)/);
  } finally {
    await env.close();
  }
});

s("a record whose processElement never settles (one key: nothing finishes): after asyncState.stallTimeoutMs the log and weir status say stalled", async () => {
  const lines: string[] = [];
  const env = StreamEnvironment.create({ name: "stalls", nats: nats.url, parallelism: 1, stateBackend: "heap", asyncState: { stallTimeoutMs: 300 } }, { log: (l) => { lines.push(l); } });
  try {
    env.fromSource(Sources.generator({ ratePerSec: 50, make: (i) => i })).keyBy(() => "one key")
      .process<number>({ async processElement(i, ctx) { if (i === 3) await new Promise(() => {}); ctx.collect(i); } }, { name: "hangs" })
      .sinkTo({ kind: "discard", createWriter: async () => ({ write: () => {}, flush: async () => {}, close: async () => {} }) });
    const client = await env.executeAsync();
    const deadline = Date.now() + 20_000;
    while (!lines.some((l) => /operator "hangs" subtask 0: \d+ records in flight, none finished .*never settles/.test(l)) || !/stalled/.test(formatStatus(client.status()))) {
      assert.ok(Date.now() < deadline, `no stall said within 20 s: ${lines.slice(-5).join("\n")} ${formatStatus(client.status())}`);
      await new Promise((r) => setTimeout(r, 100));
    }
    const line = formatStatus(client.status()).split("\n").find((l) => l.includes("hangs"))!;
    assert.match(line, /\d+ stalled/);
    await client.cancel();
  } finally {
    await env.close();
  }
});

s("one key's processElement not settling while other keys' records finish: after asyncState.stallTimeoutMs the log names the key and weir status says stalled, until it settles", async () => {
  const lines: string[] = [];
  let release: (() => void) | undefined;
  const stuck = new Promise<void>((r) => { release = r; });
  let out = 0;
  const env = StreamEnvironment.create({ name: "stalls-one-key", nats: nats.url, parallelism: 1, stateBackend: "heap", asyncState: { stallTimeoutMs: 1000 } }, { log: (l) => { lines.push(l); } });
  env.fromSource(Sources.generator({ ratePerSec: 100, make: (i) => ({ k: `k${i % 5}`, i }) })).keyBy((r) => r.k)
    .process<number>({ async processElement(r, ctx) { if (r.i === 2) await stuck; ctx.collect(r.i); } }, { name: "hangs" })
    .sinkTo({ kind: "count", createWriter: async () => ({ write: () => { out++; }, flush: async () => {}, close: async () => {} }) });
  let cancel = async (): Promise<unknown> => undefined;
  try {
    const client = await env.executeAsync();
    cancel = () => client.cancel();
    const stalledFlag = () => Object.values(client.status().subtasks.find((st) => st.name.includes("hangs"))?.operators ?? {}).find((m) => m.stalled !== undefined)?.stalled;
    const line = await eventually("the stuck key in the log", 20_000, () => lines.find((l) => l.includes("has been running")));
    assert.match(line, /^operator "hangs" subtask 0: a record \(or timer\) of key "k2" has been running for more than \d+ m?s while other records finish \(a processElement or onTimer that never settles\?\); \d+ more of the key wait behind it, \d+ records in flight; weir status shows it as stalled$/);
    await eventually("stalled in weir status", 20_000, () => (/\d+ stalled/.test(formatStatus(client.status()).split("\n").find((l) => l.includes("hangs")) ?? "") ? true : undefined));
    const before = out;
    await eventually("other keys' output going on", 20_000, () => (out > before + 20 ? true : undefined));
    assert.not.ok(lines.some((l) => l.includes("none finished")), "other keys' records kept finishing");
    release!();
    await eventually("the flag cleared once the record settled", 20_000, () => (stalledFlag() === 0 ? true : undefined));
  } finally {
    release?.();
    await cancel().catch(() => {});
    await env.close();
  }
});

s.run();
