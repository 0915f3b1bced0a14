// `npm run bench checkpoint`, on the KV backend, the same job at two state sizes:
// 1. Checkpoint duration (trigger → committed) with 1M keys of state vs 10k keys, same update rate.
// 2. Recovery: SIGKILL of a running `weir run`, then a new `weir run` until its first output; and rescale:
//    a savepoint at parallelism 2, then `weir run --parallelism 4` until its first output. Both include
//    the process start (node + TypeScript loading, about 1 s here), as a user sees it.
// 3. Throughput of a keyed count with a 1 s checkpoint interval vs checkpoints off.

import { spawn, type ChildProcess } from "node:child_process";
import { connect, type NatsConnection } from "@nats-io/transport-node";
import { StreamEnvironment } from "../mod.ts";
import { CheckpointStore } from "../runtime/internal.ts";
import { summarize } from "../runtime/internal.ts";
import { JobNames } from "../runtime/internal.ts";
import { buildKeyedCounts, type KeyedCountsParams } from "./jobs/keyed-counts.ts";
import { rate, type BenchContext, type Benchmark, type BenchRow } from "./harness.ts";

const JOB_FILE = new URL("./jobs/keyed-counts.ts", import.meta.url).pathname;
const WEIR = new URL("../bin/weir.mjs", import.meta.url).pathname;
const UPDATE_RATE = 5000;

async function runInProcess(ctx: BenchContext, name: string, params: KeyedCountsParams, checkpointIntervalMs: number | undefined, runForMs?: number): Promise<number> {
  // Streaming in every run: with no checkpoint interval, mode "automatic" runs this bounded job in batch
  // mode (sorted by key, no async controller), and the throughput row compared that with checkpointed
  // streaming (0.53 on 2026-12-05), not checkpoints on with checkpoints off.
  const env = StreamEnvironment.create({
    name, nats: ctx.url, parallelism: 2, stateBackend: "jetstream-kv", checkpointsRetained: 1000, mode: "streaming",
    ...(checkpointIntervalMs ? { checkpointIntervalMs } : {}),
  }, { log: () => {} });
  buildKeyedCounts(env, params);
  const t0 = performance.now();
  try {
    if (runForMs === undefined) await env.execute();
    else {
      const client = await env.executeAsync();
      await new Promise((r) => setTimeout(r, runForMs));
      await client.stop();
    }
    return performance.now() - t0;
  } finally {
    await env.close();
  }
}

async function checkpointDurations(nc: NatsConnection, job: string, after: number): Promise<{ ids: number[]; durations: number[]; entries: number[] }> {
  const store = await CheckpointStore.open(nc, new JobNames(job));
  const out = { ids: [] as number[], durations: [] as number[], entries: [] as number[] };
  for (const id of await store.list()) {
    if (id <= after) continue;
    const m = await store.read(id);
    if (!m || m.kind !== "checkpoint") continue;
    const s = summarize(m);
    out.ids.push(id);
    out.durations.push(s.durationMs);
    out.entries.push(s.entries);
  }
  return out;
}

async function latestId(nc: NatsConnection, job: string): Promise<number> {
  return (await (await CheckpointStore.open(nc, new JobNames(job))).latest())?.pointer.id ?? 0;
}

const median = (xs: readonly number[]) => { const s = [...xs].sort((a, b) => a - b); return s.length ? s[Math.floor(s.length / 2)]! : NaN; };

interface Child { readonly process: ChildProcess; readonly exited: Promise<number | null>; stderr: string }

function startJob(ctx: BenchContext, job: string, keys: number, extra: string[] = []): Child {
  const proc = spawn(process.execPath, [WEIR, "run", JOB_FILE, "--nats", ctx.url, "--quiet", ...extra], {
    env: { ...process.env, BENCH_JOB: job, BENCH_KEYS: String(keys), BENCH_RATE: String(UPDATE_RATE), BENCH_ORDER: "spread" },
    stdio: ["ignore", "ignore", "pipe"],
  });
  const child: Child = { process: proc, exited: new Promise((r) => proc.on("exit", (code) => r(code))), stderr: "" };
  proc.stderr!.on("data", (d) => { child.stderr += d; });
  return child;
}

/** Milliseconds from now until the next message on bench.out (the first output of a starting job). */
function nextOutput(nc: NatsConnection, timeoutMs = 60_000): { started: number; first: Promise<number>; of(child: Child): Promise<number> } {
  const started = performance.now();
  const sub = nc.subscribe("bench.out", { max: 1 });
  const first = (async () => {
    const timer = setTimeout(() => sub.unsubscribe(), timeoutMs);
    for await (const _ of sub) { clearTimeout(timer); return performance.now() - started; }
    throw new Error(`no output within ${timeoutMs} ms`);
  })();
  return {
    started,
    first,
    // A child that ends before its first output failed: say why instead of waiting for the timeout.
    of: (child) => Promise.race([first, child.exited.then((code) => { sub.unsubscribe(); throw new Error(`the job exited (${code}) before any output: ${child.stderr.slice(-400)}`); })]),
  };
}

async function stopWithSavepoint(ctx: BenchContext, job: string, child: Child): Promise<void> {
  const stop = spawn(process.execPath, [WEIR, "stop", job, "--savepoint", "--nats", ctx.url], { stdio: "ignore" });
  await new Promise((r) => stop.on("exit", r));
  const code = await child.exited;
  if (code !== 0) throw new Error(`${job} did not stop cleanly with a savepoint (exit ${code}): ${child.stderr.slice(-300)}`);
}

interface SizeFigures { checkpointMs: number; entries: number; checkpoints: number; recoveryMs: number; rescaleMs: number; loadMs: number }

async function measureSize(ctx: BenchContext, nc: NatsConnection, keys: number): Promise<SizeFigures> {
  const job = `ckpt-${keys}`;
  // Load every key once (dense), checkpointed: the state the later phases run on.
  const loadMs = await runInProcess(ctx, job, { keys, count: keys, order: "dense" }, 1000);
  ctx.log(`${keys} keys: state loaded in ${Math.round(loadMs)} ms`);
  // Steady updates at the same rate for both sizes; every checkpoint of this phase is measured.
  const before = await latestId(nc, job);
  await runInProcess(ctx, job, { keys, ratePerSec: UPDATE_RATE, order: "spread" }, 1000, 12_000);
  const steady = await checkpointDurations(nc, job, before);
  // The first checkpoint after a restore also carries what the restore replayed: leave it out.
  const durations = steady.durations.slice(1);
  const checkpointMs = median(durations);
  ctx.log(`${keys} keys: ${durations.length} checkpoints at ${UPDATE_RATE} updates/s, median ${checkpointMs} ms (all: ${durations.join(", ")}), median ${median(steady.entries.slice(1))} entries changed`);
  // Crash: a running process is killed, a new one resumes from the latest checkpoint.
  const victim = startJob(ctx, job, keys);
  await nextOutput(nc).first;
  await new Promise((r) => setTimeout(r, 3000));
  victim.process.kill("SIGKILL");
  await victim.exited;
  const watch = nextOutput(nc);
  const resumed = startJob(ctx, job, keys);
  const recoveryMs = Math.round(await watch.of(resumed));
  ctx.log(`${keys} keys: SIGKILL → new process → first output ${recoveryMs} ms`);
  await new Promise((r) => setTimeout(r, 2000));
  await stopWithSavepoint(ctx, job, resumed);
  // Rescale: resume the savepoint at parallelism 4.
  const watch4 = nextOutput(nc);
  const rescaled = startJob(ctx, job, keys, ["--parallelism", "4"]);
  const rescaleMs = Math.round(await watch4.of(rescaled));
  ctx.log(`${keys} keys: savepoint at parallelism 2 → new process at 4 → first output ${rescaleMs} ms`);
  await new Promise((r) => setTimeout(r, 1000));
  rescaled.process.kill("SIGINT");
  await rescaled.exited;
  return { checkpointMs, entries: median(steady.entries.slice(1)), checkpoints: durations.length, recoveryMs, rescaleMs, loadMs };
}

const bench: Benchmark = {
  name: "checkpoint",
  description: "checkpoint duration, recovery and rescale with 1M vs 10k keys of KV state; throughput with 1 s checkpoints vs off",
  async run(ctx: BenchContext): Promise<BenchRow[]> {
    const nc = await connect({ servers: ctx.url });
    try {
      const large = Math.max(20_000, Math.round(1_000_000 * ctx.scale));
      const small = 10_000;
      const s = await measureSize(ctx, nc, small);
      const l = await measureSize(ctx, nc, large);
      // Throughput: the same bounded keyed count, checkpoints every second vs none.
      const records = Math.round(500_000 * ctx.scale);
      const params: KeyedCountsParams = { keys: 100_000, count: records, order: "spread" };
      const offMs = await runInProcess(ctx, "tput-off", params, undefined);
      const onMs = await runInProcess(ctx, "tput-on", params, 1000);
      ctx.log(`throughput: ${records} records, checkpoints off ${Math.round(offMs)} ms, every 1 s ${Math.round(onMs)} ms`);
      return [
        { figure: `checkpoint duration, ${large} vs ${small} keys of state, ${UPDATE_RATE} updates/s (median of ${l.checkpoints} / ${s.checkpoints})`, weir: l.checkpointMs, baseline: s.checkpointMs, unit: "ms", goal: "<= 1.5", note: "lower is better" },
        { figure: `recovery: SIGKILL → first output of the new process, ${large} vs ${small} keys`, weir: l.recoveryMs, baseline: s.recoveryMs, unit: "ms", goal: "<= 1.5 and < 3000 ms", note: "lower is better" },
        { figure: `rescale 2 → 4: savepoint → first output at parallelism 4, ${large} vs ${small} keys`, weir: l.rescaleMs, baseline: s.rescaleMs, unit: "ms", goal: "<= 1.5 and < 3000 ms", note: "lower is better" },
        { figure: `keyed count, ${records} records over 100k keys (KV): checkpoints every 1 s vs off`, weir: rate(records, onMs), baseline: rate(records, offMs), unit: "records/s", goal: ">= 0.8" },
      ];
    } finally {
      await nc.close();
    }
  },
};

export default bench;
