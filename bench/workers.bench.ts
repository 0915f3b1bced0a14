// `npm run bench workers`: a CPU-bound keyed job (bench/jobs/cpu-keys.ts, ~20 µs of hashing per record,
// parallelism 2) run as `weir run` worker processes on one nats-server.
//  1. Throughput over a pre-published backlog with 2 workers vs 1 (with the nats-server's CPU seconds).
//  2. With input arriving (a job of parallelism 4, so that a third worker gets subtasks), a worker joins:
//     the longest pause in output growth from its start until 3 s after the job runs on it, and
//     records the process function handled twice (per-process counters written by the job).
//  3. SIGKILL of a non-leader, then of the leader: ms from the kill to new output after the restart.
// Output is polled (stream info, messages) every 50 ms; it grows at checkpoint commits (exactly-once sink).
import { mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { availableParallelism, tmpdir } from "node:os";
import { join } from "node:path";
import { connect, type NatsConnection } from "@nats-io/transport-node";
import { jetstreamManager, type JetStreamManager } from "@nats-io/jetstream";
import type { WeirProcess } from "../tests/helpers/cli.ts";
import { publishAll } from "../tests/helpers/streams.ts";
import { fetchStatus } from "../runtime/cli/commands/control.ts";
import type { BenchContext, Benchmark, BenchRow } from "./harness.ts";
import { calibrate, cpuSeconds, keyOf, outputs, processedIn, runningOn, sleep, stop, throughput, until, worker, type Ctx } from "./workers-support.ts";

/** Outputs expected once `published` records (ids 0..published-1) are all processed: the live phase emits each. */
function expectedOutputs(published: number): number {
  return published;
}

/** Input at a steady rate (batches every 100 ms) until stopped; ids continue from `from`. */
function feed(nc: NatsConnection, subject: string, subjects: number, perSec: number, from: number): { published(): number; stop(): Promise<number> } {
  let id = from;
  let running = true;
  const loop = (async () => {
    while (running) {
      const t = Date.now();
      const batch: Array<[string, unknown]> = [];
      for (let i = 0; i < perSec / 10; i++, id++) batch.push([`${subject}.${id % subjects}`, { id, key: keyOf(id) }]);
      await publishAll(nc, batch);
      await sleep(Math.max(0, 100 - (Date.now() - t)));
    }
  })();
  loop.catch(() => {});
  return { published: () => id, stop: async () => { running = false; await loop; return id; } };
}

/** Polls the output every 50 ms until `done()` (at most 90 s): the longest time it did not grow. */
async function longestGap(jsm: JetStreamManager, stream: string, done: () => boolean): Promise<number> {
  let last = await outputs(jsm, stream);
  let grewAt = Date.now();
  let gap = 0;
  const deadline = Date.now() + 90_000;
  while (!done() && Date.now() < deadline) {
    await sleep(50);
    const n = await outputs(jsm, stream);
    if (n > last) { gap = Math.max(gap, Date.now() - grewAt); grewAt = Date.now(); last = n; }
  }
  return Math.max(gap, Date.now() - grewAt);
}

const after = (ms: number) => { const end = Date.now() + ms; return () => Date.now() >= end; };

/**
 * Messages and bytes per second on the job's control subjects (heartbeats, pings and commands to workers,
 * the job log, the subtasks' reports) and on its data subjects (frames and credits), over `ms`. A proxy
 * for what the control plane costs: its share of what the workers and the server handle.
 */
async function controlPlane(nc: NatsConnection, job: string, ms: number): Promise<{ control: { msgs: number; bytes: number }; data: { msgs: number; bytes: number }; kinds: string[] }> {
  const control = { msgs: 0, bytes: 0 };
  const data = { msgs: 0, bytes: 0 };
  const bySubject = new Map<string, { msgs: number; bytes: number }>();
  const count = (into: { msgs: number; bytes: number }) => (_: unknown, m: { data: Uint8Array; subject: string }) => {
    const bytes = m.data.length + m.subject.length;
    into.msgs++;
    into.bytes += bytes;
    if (into !== control) return;
    // By kind of subject: the job's prefix dropped, a worker's id as "*".
    const kind = m.subject.slice(`weir.${job}.`.length).replace(/^w\.[^.]+\./, "w.*.");
    const k = bySubject.get(kind) ?? { msgs: 0, bytes: 0 };
    k.msgs++;
    k.bytes += bytes;
    bySubject.set(kind, k);
  };
  const subs = [
    ...[`weir.${job}.workers.hb`, `weir.${job}.w.>`, `weir.${job}.logged.>`, `weir.${job}.leader.reports`].map((s) => nc.subscribe(s, { callback: count(control) })),
    nc.subscribe(`weir.${job}.run.>`, { callback: count(data) }),
  ];
  await sleep(ms);
  for (const s of subs) s.unsubscribe();
  const per = (x: { msgs: number; bytes: number }) => ({ msgs: (x.msgs * 1000) / ms, bytes: (x.bytes * 1000) / ms });
  const kinds = [...bySubject].sort((a, b) => b[1].bytes - a[1].bytes)
    .map(([kind, x]) => `${kind} ${per(x).msgs.toFixed(1)} msgs/s ${(per(x).bytes / 1024).toFixed(2)} KiB/s`);
  return { control: per(control), data: per(data), kinds };
}

/** SIGKILLs `victim`; ms until the output grows after the leader reports a newer epoch running. */
async function recovery(c: Ctx, job: string, output: string, victim: WeirProcess, epoch: number): Promise<number> {
  const t0 = Date.now();
  victim.child.kill("SIGKILL");
  await victim.exited;
  let base: number | undefined;
  for (;;) {
    if (Date.now() - t0 > 60_000) {
      const st = await fetchStatus(c.nc, job).catch(() => undefined);
      c.log(`no new output within 60 s of the SIGKILL (epoch before ${epoch}); status: ${st ? `${st.state}, epoch ${st.epoch}, workers ${JSON.stringify(st.workers?.map((w) => [w.pid, w.leader, w.subtasks.length]))}, failure ${st.failure ?? "-"}` : "no answer"}`);
      for (const p of c.procs) if (p !== victim && p.child.exitCode === null) c.log(`  worker ${p.child.pid} stderr: ${p.stderr().slice(-500).replace(/\n/g, " ⏎ ")}`);
      return Number.NaN;
    }
    if (base === undefined) {
      const s = await fetchStatus(c.nc, job).catch(() => undefined);
      if (s?.state === "running" && (s.epoch ?? 0) > epoch) base = await outputs(c.jsm, output);
    } else if ((await outputs(c.jsm, output)) > base) {
      return Date.now() - t0;
    }
    await sleep(50);
  }
}

const bench: Benchmark = {
  name: "workers",
  description: "a CPU-bound keyed job (~20 µs/record, p=2) as `weir run` workers: 2 vs 1 worker, SIGKILL recovery, join pause",
  async run(ctx: BenchContext): Promise<BenchRow[]> {
    const nc = await connect({ servers: ctx.url });
    const procs = new Set<WeirProcess>();
    const dir = mkdtempSync(join(tmpdir(), "weir-bench-workers-"));
    let input: ReturnType<typeof feed> | undefined;
    try {
      const jsm = await jetstreamManager(nc);
      const c: Ctx = { nc, jsm, url: ctx.url, spin: calibrate(20), procs, log: ctx.log };
      ctx.log(`spin: ${c.spin} rounds ≈ 20 µs of CPU per record here`);

      // 1. Throughput: one backlog, read by a 1-worker job and a 2-worker job (separate jobs and outputs).
      const total = Math.round(500_000 * ctx.scale);
      const windowMs = Math.max(3000, Math.round(8000 * ctx.scale));
      await jsm.streams.add({ name: "BACKLOG", subjects: ["backlog.*"] });
      for (let i = 0; i < total; i += 20_000) {
        const batch: Array<[string, unknown]> = [];
        for (let id = i; id < Math.min(total, i + 20_000); id++) batch.push([`backlog.${id % 2}`, { id, key: keyOf(id) }]);
        await publishAll(nc, batch);
      }
      ctx.log(`published ${total} events to BACKLOG`);
      const sub = (name: string) => { const d = join(dir, name); mkdirSync(d); return d; };
      const one = await throughput(c, 1, total, windowMs, ctx.serverPid, sub("one"));
      const two = await throughput(c, 2, total, windowMs, ctx.serverPid, sub("two"));

      // 2. A third worker joins while input arrives.
      const job = "bench-workers-live";
      const perSec = Math.round(Math.min(one.rate * 0.5, 4000));
      const live = sub("live");
      const env = { BENCH_PROCESSED_DIR: live, BENCH_PARALLELISM: "4", BENCH_EMIT_EVERY: "1" };
      await jsm.streams.add({ name: "LIVE", subjects: ["live.*"] });
      // Records processed beyond those published, once all output is there (input stopped).
      const drained = async (published: number) => {
        await until("all live outputs", 120_000, async () => ((await outputs(jsm, "LOUT")) >= expectedOutputs(published) ? true : undefined));
        await sleep(600); // the per-process counters are written every 200 ms
        return processedIn(live) - published;
      };
      // The two workers start together: the second one's join is a rebalance too. Its replays are counted
      // before the third worker joins, from a drained job, and subtracted.
      input = feed(nc, "live", 4, perSec, 0);
      const ws = [worker(c, job, "LIVE", "LOUT", env), worker(c, job, "LIVE", "LOUT", env)];
      await runningOn(nc, job, ws, "the live job runs on 2 workers");
      let published = await input.stop();
      const before = await drained(published);
      input = feed(nc, "live", 4, perSec, published);
      const steadyGap = await longestGap(jsm, "LOUT", after(4000));
      ws.push(worker(c, job, "LIVE", "LOUT", env));
      // From the start of the third process until 3 s after the job runs on all three.
      let joinedAt: number | undefined;
      const waitJoin = runningOn(nc, job, ws, "the third worker joined").then(() => { joinedAt = Date.now(); });
      waitJoin.catch(() => { joinedAt = Date.now(); });
      const joinGap = await longestGap(jsm, "LOUT", () => joinedAt !== undefined && Date.now() > joinedAt + 3000);
      await waitJoin;
      published = await input.stop();
      input = undefined;
      const reprocessed = (await drained(published)) - before;
      ctx.log(`join: ${perSec} records/s in; longest output pause ${joinGap} ms (steady state ${steadyGap} ms); records processed twice: ${before} before the join (2 workers starting), ${reprocessed} at the join`);

      // The control plane's CPU: the 3 workers and the server with no input (heartbeats, pings, lease
      // renewals, status reports; the periodic checkpoints of an idle job too), as a share of the machine's cores.
      const idleMs = 5000;
      const pids = [...ws.map((p) => p.child.pid!), ctx.serverPid];
      const idle0 = pids.map(cpuSeconds);
      await sleep(idleMs);
      const idleCores = pids.map((p, i) => cpuSeconds(p) - idle0[i]!).reduce((a, b) => a + b, 0) / (idleMs / 1000);
      const cores = availableParallelism();
      ctx.log(`idle job on 3 workers: ${(idleCores * 100).toFixed(1)}% of a core in all (workers and server), ${((idleCores / cores) * 100).toFixed(2)}% of the machine's ${cores} cores`);

      // 3. SIGKILL of a non-leader, then of the leader, while input arrives.
      input = feed(nc, "live", 4, perSec, published);
      await sleep(1500);
      let s = await runningOn(nc, job, ws, "the live job runs on 3 workers");
      const plane = await controlPlane(nc, job, 4000);
      ctx.log(`control plane with 3 workers: ${plane.control.msgs.toFixed(0)} msgs/s, ${(plane.control.bytes / 1024).toFixed(1)} KiB/s; data: ${plane.data.msgs.toFixed(0)} frames/s, ${(plane.data.bytes / 1024).toFixed(1)} KiB/s; control by subject: ${plane.kinds.join("; ")}`);
      const byPid = (pid: number) => ws.find((p) => p.child.pid === pid)!;
      const other = byPid(s.workers!.find((w) => !w.leader)!.pid);
      const workerMs = await recovery(c, job, "LOUT", other, s.epoch ?? 0);
      ws.splice(ws.indexOf(other), 1);
      s = await runningOn(nc, job, ws, "the live job runs on the 2 left");
      await sleep(1500);
      const leader = byPid(s.workers!.find((w) => w.leader)!.pid);
      const leaderMs = await recovery(c, job, "LOUT", leader, s.epoch ?? 0);
      ctx.log(`SIGKILL → new output: non-leader ${workerMs} ms, leader ${leaderMs} ms (output polled every 50 ms)`);

      return [
        { figure: "throughput, 2 workers vs 1", weir: two.rate, baseline: one.rate, unit: "records/s", goal: ">= 1.6" },
        { figure: "nats-server CPU in the window, 2 workers vs 1", weir: two.serverCpu, baseline: one.serverCpu, unit: "s" },
        { figure: "SIGKILL non-leader → new output (baseline: steady output pause)", weir: workerMs, baseline: steadyGap, unit: "ms", goal: "weir < 3000" },
        { figure: "SIGKILL leader → new output (baseline: steady output pause)", weir: leaderMs, baseline: steadyGap, unit: "ms", goal: "weir < 8000" },
        { figure: "join of a 3rd worker: longest output pause (baseline: steady)", weir: joinGap, baseline: steadyGap, unit: "ms", goal: "weir < 2000" },
        { figure: "join of a 3rd worker: records processed twice", weir: reprocessed, unit: "records", goal: "0" },
        { figure: "control plane: CPU of an idle job on 3 workers (and the server) as a share of the machine", weir: (idleCores / cores) * 100, unit: "%", goal: "< 2" },
        { figure: "control-plane bytes vs data bytes, 3 workers (baseline: data)", weir: plane.control.bytes, baseline: plane.data.bytes, unit: "B/s", goal: "ratio < 0.02 (a proxy)" },
      ];
    } finally {
      await input?.stop().catch(() => {});
      await stop(procs);
      await nc.close().catch(() => {});
      rmSync(dir, { recursive: true, force: true });
    }
  },
};

export default bench;
