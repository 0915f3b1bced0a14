// What `npm run bench workers` and `npm run bench control-plane` share: the CPU-bound job
// (bench/jobs/cpu-keys.ts) run as `weir run` worker processes, its calibration, per-process CPU seconds,
// and the throughput over a pre-published backlog (counted at the process function).
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import type { NatsConnection } from "@nats-io/transport-node";
import type { JetStreamManager } from "@nats-io/jetstream";
import { startWeir, type WeirProcess } from "../tests/helpers/cli.ts";
import { fetchStatus } from "../runtime/cli/commands/control.ts";
import type { JobStatus } from "../actors/job/job-status.ts";
import { spin } from "./jobs/cpu-keys.ts";
import { rate } from "./harness.ts";

export const JOB_FILE = new URL("./jobs/cpu-keys.ts", import.meta.url).pathname;
export const KEYS = 1000;
export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
export const keyOf = (id: number) => `k${id % KEYS}`;

/** Rounds of `spin` that take about `us` µs of CPU here (measured with process.cpuUsage). */
export function calibrate(us: number): number {
  const rounds = 2000;
  const reps = 2000;
  spin(1, rounds * 50);
  const t0 = process.cpuUsage();
  let sink = 0;
  for (let i = 0; i < reps; i++) sink ^= spin(i, rounds);
  const d = process.cpuUsage(t0);
  const perRecordUs = (d.user + d.system) / reps;
  return Math.max(1, Math.round((rounds * us) / perRecordUs + (sink & 0)));
}

/** utime + stime of a process, in seconds (Linux /proc; clock ticks of 100 Hz). */
export function cpuSeconds(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

export async function outputs(jsm: JetStreamManager, stream: string): Promise<number> {
  try {
    return (await jsm.streams.info(stream)).state.messages;
  } catch {
    return 0;
  }
}

export async function until<T>(what: string, ms: number, check: () => Promise<T | undefined>): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await check();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`${what}: not seen within ${ms} ms`);
    await sleep(100);
  }
}

/** The job's status once it runs on exactly these processes, each with subtasks. */
export function runningOn(nc: NatsConnection, job: string, procs: readonly WeirProcess[], what: string): Promise<JobStatus> {
  const pids = procs.map((p) => p.child.pid!).sort().join();
  return until(what, 90_000, async () => {
    const s = await fetchStatus(nc, job).catch(() => undefined);
    const ws = s?.workers ?? [];
    return s?.state === "running" && ws.map((w) => w.pid).sort().join() === pids && ws.every((w) => w.subtasks.length > 0) ? s : undefined;
  });
}

export interface Ctx { nc: NatsConnection; jsm: JetStreamManager; url: string; spin: number; procs: Set<WeirProcess>; log(l: string): void }

export function worker(c: Ctx, job: string, input: string, output: string, extra: Record<string, string> = {}): WeirProcess {
  const p = startWeir(["run", JOB_FILE, "--nats", c.url], {
    env: { BENCH_JOB: job, BENCH_IN: input, BENCH_OUT: output, BENCH_SPIN: String(c.spin), ...extra },
  });
  c.procs.add(p);
  return p;
}

/** Records handled by the process functions so far: the sum of the counters the job writes to `dir`. */
export function processedIn(dir: string): number {
  return readdirSync(dir).filter((f) => !f.endsWith(".tmp")).reduce((sum, f) => sum + (Number(readFileSync(join(dir, f), "utf8")) || 0), 0);
}

/**
 * Records/s over a window once the job runs on `n` workers, reading the pre-published stream BACKLOG.
 * Counted at the process function (the job's counters), not at the output: under a saturating backlog
 * output only appears at checkpoint commits, which come late, so it would measure the checkpoint cadence.
 */
export async function throughput(
  c: Ctx, n: number, total: number, windowMs: number, serverPid: number, dir: string,
  run: { job?: string; input?: string; env?: Record<string, string> } = {},
): Promise<{ rate: number; serverCpu: number }> {
  const job = run.job ?? `bench-workers-${n}`;
  const procs = Array.from({ length: n }, () => worker(c, job, run.input ?? "BACKLOG", `TPUT${job.replace(/[^A-Za-z0-9]/g, "")}`, { BENCH_PROCESSED_DIR: dir, ...run.env }));
  try {
    await runningOn(c.nc, job, procs, `the job runs on ${n} worker(s)`);
    await sleep(1000); // past the (re)placement's restart
    const c0 = processedIn(dir);
    const cpu0 = cpuSeconds(serverPid);
    const t0 = Date.now();
    let c1 = c0;
    while (Date.now() - t0 < windowMs && c1 < total * 0.9) { await sleep(250); c1 = processedIn(dir); }
    const ms = Date.now() - t0;
    const serverCpu = cpuSeconds(serverPid) - cpu0;
    if (c1 >= total * 0.9) c.log(`${n} worker(s): the backlog ran low after ${ms} ms of the ${windowMs} ms window`);
    const r = rate(c1 - c0, ms);
    const st = await fetchStatus(c.nc, job).catch(() => undefined);
    const changes = `epoch ${st?.epoch}, restarts ${st?.restarts}, rebalances: ${(st?.rebalances ?? []).map((x) => x.cause).join("; ") || "none"}, failures: ${(st?.failures ?? []).map((f) => f.error.slice(0, 120)).join("; ") || "none"}`;
    c.log(`${n} worker(s): ${r} records/s over ${ms} ms (${c0} → ${c1} records; job in ${st?.recordsIn}; ${changes}); nats-server CPU ${serverCpu.toFixed(2)} s (${((serverCpu * 1000) / ms * 100).toFixed(0)}% of a core)`);
    return { rate: r, serverCpu };
  } finally {
    await stop(procs);
  }
}

export async function stop(procs: Iterable<WeirProcess>): Promise<void> {
  for (const p of procs) if (p.child.exitCode === null && p.child.signalCode === null) p.child.kill("SIGKILL");
  await Promise.all([...procs].map((p) => p.exited));
}
