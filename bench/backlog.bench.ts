// `npm run bench backlog`:
// 1. A keyed sum over a 1M-record backlog (KV backend) followed by live records: sorting the backlog
//    (checkpointIntervalDuringBacklogMs 0) vs pure streaming of it, same results. As Flink's reduce (with the
//    default cache, and a 10k-entry one), and as a process function with value state (state within the
//    default cache: 100k keys; beyond it: 500k keys, and 100k keys with a 10k-entry cache). The backlog
//    phase starts when the source makes its first record (job start-up, the same in both modes, is not
//    backlog processing) and ends when every key's sum over the backlog has reached the sink; the whole
//    job, start-up included, is shown too.
// 2. Memory: a 5M-record backlog with a 64 MB sort budget, in a child process (bench/sort-memory.ts): the
//    sort spills, RSS stays low with V8's heap growth as `weir run` sets it; V8's default shown too.

import * as t from "io-ts";
import { Kvm } from "@nats-io/kv";
import { connect } from "@nats-io/transport-node";
import { JobNames } from "../runtime/internal.ts";
import { Sources, StreamEnvironment, valueState, type SinkDef, type SourceDef } from "../mod.ts";
import { AS_WEIR_RUN, rate, runChild, type BenchContext, type Benchmark, type BenchRow } from "./harness.ts";

interface Event { k: string; v: number }

/** The sums seen at the sink, by key number (`key-<n>`), in typed arrays: the harness keeps no per-key Map or Set in weir's process. */
class KeySums {
  readonly values: Float64Array;
  private readonly seen: Uint8Array;
  reached = 0;
  constructor(readonly keys: number) {
    this.values = new Float64Array(keys);
    this.seen = new Uint8Array(keys);
  }
  /** Notes `v` as key `n`'s value unless one was noted already; true when it is new. */
  note(n: number, v: number): boolean {
    if (this.seen[n] === 1) return false;
    this.seen[n] = 1;
    this.values[n] = v;
    this.reached++;
    return true;
  }
}

const keyNumber = (k: string): number => Number(k.slice(4));

/**
 * Notes when every key has reached its sum over the whole backlog (the end of the backlog phase) and the
 * output that reached it. (Sums only grow; in streaming, a live record of one source subtask may overtake
 * the other's last backlog records, so "reached" is "at least"; a sorted backlog is drained before any
 * live record, so there each key's output is its backlog sum exactly.)
 */
function finalSums(into: KeySums, backlogSums: Float64Array, phase: Phase): SinkDef<Event> {
  return {
    kind: "sums",
    createWriter: async () => ({
      write: (e: Event) => {
        if (phase.endedAt !== undefined) return;
        const n = keyNumber(e.k);
        // The first output at or past the key's backlog sum.
        if (e.v >= backlogSums[n]! && into.note(n, e.v) && into.reached === into.keys) phase.endedAt = performance.now();
      },
      flush: async () => {},
      close: async () => {},
    }),
  };
}

interface Phase { startedAt?: number; endedAt?: number }

const backlogEvent = (i: number, keys: number): Event => ({ k: `key-${(i * 7919) % keys}`, v: i % 10 });

/** Each key's sum over the backlog, by key number (every key occurs: 7919 is prime to the key counts). */
function sumsOf(backlog: number, keys: number): Float64Array {
  const sums = new Float64Array(keys);
  for (let i = 0; i < backlog; i++) {
    const e = backlogEvent(i, keys);
    sums[keyNumber(e.k)]! += e.v;
  }
  return sums;
}

const sumState = valueState("sum", t.number);

/** The operator under test: Flink's reduce, or the same sum as a process function with value state (what a new user writes). */
type Operator = "reduce" | "process";

async function runReduce(ctx: BenchContext, name: string, backlog: number, keys: number, sorted: boolean, sums: KeySums, cacheMaxEntries?: number, operator: Operator = "reduce"): Promise<{ ms: number; backlogMs: number; startupMs: number }> {
  // Both runs write state to KV as they go (no checkpoints); the sorted one in FLIP-327's mixed mode.
  const env = StreamEnvironment.create({
    name, nats: ctx.url, parallelism: 2, stateBackend: "jetstream-kv",
    mode: sorted ? "automatic" : "streaming",
    ...(cacheMaxEntries ? { state: { cacheMaxEntries } } : {}),
  }, { log: () => {} });
  const backlogSums = sumsOf(backlog, keys);
  const phase: Phase = {};
  const history = Sources.generator({ count: backlog, make: (i) => { phase.startedAt ??= performance.now(); return backlogEvent(i, keys); } }) as SourceDef<Event>;
  // Live input without an end (1,000 records/s): the sorted run is FLIP-327's mixed mode (sort the backlog,
  // write state, then stream), not batch mode, which a job whose sources all end would run in.
  const live = Sources.generator({ ratePerSec: 1000, make: (i): Event => ({ k: `key-${i % keys}`, v: 1 }) }) as SourceDef<Event>;
  const keyed = env.fromSource(Sources.hybrid(history, live), { name: "history-then-live" }).keyBy((e) => e.k);
  const summed = operator === "reduce"
    ? keyed.reduce((a, b) => ({ k: a.k, v: a.v + b.v }), { name: "sum" })
    : keyed.process<Event>({
      async processElement(e, c) {
        const v = ((await c.state(sumState).value()) ?? 0) + e.v;
        await c.state(sumState).update(v);
        c.collect({ k: e.k, v });
      },
    }, { name: "sum" });
  summed.sinkTo(finalSums(sums, backlogSums, phase), { parallelism: 1 });
  const t0 = performance.now();
  const client = await env.executeAsync();
  const deadline = Date.now() + 15 * 60_000;
  while (phase.endedAt === undefined && Date.now() < deadline && client.status().state !== "failed") await new Promise((r) => setTimeout(r, 50));
  const ms = performance.now() - t0;
  await client.cancel();
  await env.close();
  await dropState(ctx.url, name);
  if (phase.endedAt === undefined || phase.startedAt === undefined) throw new Error(`${name}: some key never showed its backlog sum`);
  return { ms, backlogMs: phase.endedAt - phase.startedAt, startupMs: phase.startedAt - t0 };
}

/**
 * Deletes a finished run's state bucket (up to 500k keys): the runs share one server, and each run should
 * find it as a first job would, not holding every earlier run's keys.
 */
async function dropState(url: string, job: string): Promise<void> {
  const nc = await connect({ servers: url });
  try {
    const kv = await new Kvm(nc).open(new JobNames(job).stateBucket);
    await kv.destroy();
  } finally {
    await nc.close();
  }
}

/** RSS of a 5M-record backlog sorted with a 64 MB budget: as `weir run` sets V8's heap growth, and with V8's default. */
async function memoryRows(ctx: BenchContext): Promise<BenchRow[]> {
  const records = Math.round(5_000_000 * ctx.scale);
  const rows: BenchRow[] = [];
  for (const [label, asWeirRun] of [["V8's heap growth and young generation as `weir run` sets them (50%, 32 MB semi-spaces)", true], ["V8's default heap growth", false]] as const) {
    const m = await sortMemory(ctx, records, asWeirRun);
    ctx.log(`${records}-record backlog, ${label}: sorted in ${m.ms} ms with ${m.spills} spilled runs, max RSS ${m.rss} MB`);
    rows.push({ figure: `RSS sorting a ${records}-record backlog with a 64 MB budget, ${label}`, weir: m.rss, unit: "MB", goal: asWeirRun ? "< 400 MB" : undefined, note: `${m.spills} runs spilled, ${m.ms} ms` });
  }
  return rows;
}

/** In a child process of its own (a fresh heap, as a worker has); `asWeirRun`: V8 set as `weir run` sets it, else V8's defaults. */
async function sortMemory(ctx: BenchContext, records: number, asWeirRun: boolean): Promise<{ rss: number; spills: number; ms: number }> {
  const out = await runChild([...(asWeirRun ? AS_WEIR_RUN.flags : []), "--import", "tsx", new URL("./sort-memory.ts", import.meta.url).pathname, ctx.url, String(records)], asWeirRun ? AS_WEIR_RUN.env : {});
  return JSON.parse(out.trim().split("\n").pop()!) as { rss: number; spills: number; ms: number };
}

const bench: Benchmark = {
  name: "backlog",
  description: "keyed reduce and process over a 1M backlog (KV; state within and beyond the cache): sort-during-backlog vs streaming; RSS of a 5M backlog with a 64 MB sort budget",
  async run(ctx: BenchContext): Promise<BenchRow[]> {
    const backlog = Math.round(1_000_000 * ctx.scale);
    const keys = Math.round(100_000 * ctx.scale);
    // Twice: with the default cache (200k entries: all the state fits, streaming never waits for KV), and
    // with a 10k-entry cache (state ten times the cache, the case disaggregated state is for).
    const reduceRows: BenchRow[] = [];
    // Warm-up (both modes, a twentieth of the size, not measured): otherwise the first measured run, the
    // sorted one, also pays for compiling the code both runs share.
    for (const operator of ["reduce", "process"] as const) {
      for (const sorted of [true, false]) await runReduce(ctx, `backlog-warmup-${operator}-${sorted}`, Math.round(backlog / 20), Math.round(keys / 20), sorted, new KeySums(Math.round(keys / 20)), undefined, operator);
    }
    const cases: Array<{ operator: Operator; records: number; keys: number; cache?: number }> = [
      { operator: "reduce", records: backlog, keys },
      { operator: "reduce", records: backlog, keys, cache: 10_000 },
      // A process function with value state: state that fits the default cache, and state larger than it.
      { operator: "process", records: backlog, keys },
      { operator: "process", records: backlog, keys: Math.round(500_000 * ctx.scale) },
      // State ten times the cache with ten records per key: what sorting saves grows with records per key
      // (over 500k keys each key has two, and the KV writes the sorted run must still make bound its gain).
      { operator: "process", records: backlog, keys, cache: 10_000 },
    ];
    const only = process.env.WEIR_BENCH_BACKLOG; // "reduce", "process" or "memory": those cases only
    if (only === "memory") return memoryRows(ctx);
    for (const c of cases.filter((x) => only === undefined || x.operator === only)) {
      const label = `${c.operator}, ${c.records} records over ${c.keys} keys, ${c.cache ? `${c.cache}-entry cache` : "default cache"}`;
      const tag = `-${c.operator}-${c.keys}${c.cache ? "-small" : ""}`;
      const sortedSums = new KeySums(c.keys);
      const streamedSums = new KeySums(c.keys);
      const sorted = await runReduce(ctx, `backlog-sorted${tag}`, c.records, c.keys, true, sortedSums, c.cache, c.operator);
      ctx.log(`${label}, sorted: start-up ${Math.round(sorted.startupMs)} ms, backlog phase ${Math.round(sorted.backlogMs)} ms`);
      const streamed = await runReduce(ctx, `backlog-streamed${tag}`, c.records, c.keys, false, streamedSums, c.cache, c.operator);
      ctx.log(`${label}, streamed: start-up ${Math.round(streamed.startupMs)} ms, backlog phase ${Math.round(streamed.backlogMs)} ms`);
      const backlogSums = sumsOf(c.records, c.keys);
      const exact = sortedSums.reached === c.keys && backlogSums.every((v, n) => sortedSums.values[n] === v);
      ctx.log(`${label}: sorted run's sums equal to the backlog's: ${exact} (${sortedSums.reached} keys); streamed run reached them: ${streamedSums.reached === c.keys}`);
      if (!exact || streamedSums.reached !== c.keys) throw new Error("a run missed the backlog's sums");
      const fits = c.keys <= (c.cache ?? 200_000);
      reduceRows.push({ figure: `keyed ${label} (KV): backlog phase, sort-during-backlog vs streaming`, weir: rate(c.records, sorted.backlogMs), baseline: rate(c.records, streamed.backlogMs), unit: "records/s", goal: fits && c.operator === "process" ? ">= 1" : ">= 3" });
      reduceRows.push({ figure: "  the same, backlog phase counted from the job's start (start-up included)", weir: rate(c.records, sorted.startupMs + sorted.backlogMs), baseline: rate(c.records, streamed.startupMs + streamed.backlogMs), unit: "records/s" });
    }
    if (only !== undefined) return reduceRows;
    return [...reduceRows, ...(await memoryRows(ctx))];
  },
};

export default bench;
