// `npm run bench control-plane`: what weir's control plane (worker heartbeats and pings, the leader's
// lease renewals and the followers' pings to it) costs a job on 3 workers. The same CPU-bound keyed job
// (bench/jobs/cpu-keys.ts, parallelism 3) runs with weir's defaults (heartbeatIntervalMs 500,
// heartbeatTimeoutMs 5000) and with Flink's (10 s / 50 s: 20× fewer control messages), both in this run:
//  1. records/s over a pre-published backlog, alternating the two settings (A B A B), medians;
//  2. the CPU seconds of the 3 workers and the nats-server while the job idles (no input, checkpoints
//     off, so nothing else runs): the difference is the control plane's own cost, as a share of the machine.
import { mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { availableParallelism, tmpdir } from "node:os";
import { join } from "node:path";
import { connect } from "@nats-io/transport-node";
import { jetstreamManager } from "@nats-io/jetstream";
import type { WeirProcess } from "../tests/helpers/cli.ts";
import { publishAll } from "../tests/helpers/streams.ts";
import type { BenchContext, Benchmark, BenchRow } from "./harness.ts";
import { calibrate, cpuSeconds, keyOf, runningOn, sleep, stop, throughput, worker, type Ctx } from "./workers-support.ts";

const WORKERS = 3;
const SETTINGS = {
  weir: { BENCH_HEARTBEAT_MS: "500", BENCH_HEARTBEAT_TIMEOUT_MS: "5000" },
  flink: { BENCH_HEARTBEAT_MS: "10000", BENCH_HEARTBEAT_TIMEOUT_MS: "50000" },
} as const;
type Setting = keyof typeof SETTINGS;

const median = (xs: readonly number[]) => { const s = [...xs].sort((a, b) => a - b); return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2; };

/** CPU seconds per second of the job's workers and the server while the job runs on `WORKERS` workers with no input. */
async function idleCpu(c: Ctx, serverPid: number, setting: Setting, ms: number): Promise<number> {
  const job = `cp-idle-${setting}`;
  const env = { ...SETTINGS[setting], BENCH_PARALLELISM: String(WORKERS), BENCH_CHECKPOINT_MS: "0" };
  const procs: WeirProcess[] = Array.from({ length: WORKERS }, () => worker(c, job, "IDLE", `IDLEOUT${setting}`, env));
  try {
    await runningOn(c.nc, job, procs, `the idle job (${setting} heartbeats) runs on ${WORKERS} workers`);
    await sleep(3000); // past the deployment's start-up work
    const pids = [...procs.map((p) => p.child.pid!), serverPid];
    const before = pids.map(cpuSeconds);
    await sleep(ms);
    return pids.map((p, i) => cpuSeconds(p) - before[i]!).reduce((a, b) => a + b, 0) / (ms / 1000);
  } finally {
    await stop(procs);
  }
}

const bench: Benchmark = {
  name: "control-plane",
  description: `a CPU-bound keyed job on ${WORKERS} workers with weir's heartbeats (0.5 s / 5 s) vs Flink's (10 s / 50 s)`,
  async run(ctx: BenchContext): Promise<BenchRow[]> {
    const nc = await connect({ servers: ctx.url });
    const procs = new Set<WeirProcess>();
    const dir = mkdtempSync(join(tmpdir(), "weir-bench-control-"));
    try {
      const jsm = await jetstreamManager(nc);
      const c: Ctx = { nc, jsm, url: ctx.url, spin: calibrate(20), procs, log: ctx.log };
      const total = Math.round(600_000 * ctx.scale);
      const windowMs = Math.max(3000, Math.round(8000 * ctx.scale));
      await jsm.streams.add({ name: "CPBACKLOG", subjects: ["cpbacklog.*"] });
      await jsm.streams.add({ name: "IDLE", subjects: ["idle.*"] });
      for (let i = 0; i < total; i += 20_000) {
        const batch: Array<[string, unknown]> = [];
        for (let id = i; id < Math.min(total, i + 20_000); id++) batch.push([`cpbacklog.${id % WORKERS}`, { id, key: keyOf(id) }]);
        await publishAll(nc, batch);
      }
      ctx.log(`published ${total} events; spin ${c.spin} rounds ≈ 20 µs per record`);

      const rates: Record<Setting, number[]> = { weir: [], flink: [] };
      for (const round of [0, 1]) {
        for (const setting of ["weir", "flink"] as const) {
          const d = join(dir, `${setting}-${round}`);
          mkdirSync(d);
          const env = { ...SETTINGS[setting], BENCH_PARALLELISM: String(WORKERS) };
          const r = await throughput(c, WORKERS, total, windowMs, ctx.serverPid, d, { job: `cp-${setting}-${round}`, input: "CPBACKLOG", env });
          rates[setting].push(r.rate);
        }
      }
      ctx.log(`records/s with weir's heartbeats ${rates.weir.join(", ")}; with Flink's ${rates.flink.join(", ")}`);

      const idleMs = 10_000;
      const idleWeir = await idleCpu(c, ctx.serverPid, "weir", idleMs);
      const idleFlink = await idleCpu(c, ctx.serverPid, "flink", idleMs);
      const cores = availableParallelism();
      const planeShare = (Math.max(0, idleWeir - idleFlink) / cores) * 100;
      ctx.log(`idle job on ${WORKERS} workers (workers + server): ${(idleWeir * 100).toFixed(2)}% of a core with weir's heartbeats, ${(idleFlink * 100).toFixed(2)}% with Flink's; the difference is ${planeShare.toFixed(2)}% of the machine's ${cores} cores`);

      return [
        { figure: `throughput on ${WORKERS} workers, weir's heartbeats vs Flink's (medians of 2)`, weir: median(rates.weir), baseline: median(rates.flink), unit: "records/s", goal: ">= 0.98" },
        { figure: "control plane's CPU (idle job: weir's heartbeats minus Flink's) as a share of the machine", weir: planeShare, unit: "%", goal: "< 2" },
        { figure: `idle job on ${WORKERS} workers and the server, CPU (baseline: Flink's heartbeats)`, weir: idleWeir * 100, baseline: idleFlink * 100, unit: "% of a core" },
      ];
    } finally {
      await stop(procs);
      await nc.close().catch(() => {});
      rmSync(dir, { recursive: true, force: true });
    }
  },
};

export default bench;
