// The benchmark contract: each benchmark measures weir and its baseline in the same run, on the same
// fresh server, and returns one row per figure. bench/run.ts prints them as a table with ratios.

import { spawn } from "node:child_process";

export interface BenchContext {
  /** A nats-server started for this run (random port, own store). */
  readonly url: string;
  /** That server's process id (to read its CPU time from /proc). */
  readonly serverPid: number;
  /** WEIR_BENCH_SCALE (default 1): multiply record counts by it for quick runs (e.g. 0.1). */
  readonly scale: number;
  log(line: string): void;
}

export interface BenchRow {
  readonly figure: string;
  readonly weir: number;
  readonly baseline?: number;
  readonly unit: string;
  /** What ratio weir/baseline the issue asks for (e.g. ">= 0.8"), printed beside the measured one. */
  readonly goal?: string | undefined;
  /** For "lower is better" figures (memory, latency): ratio is still weir / baseline. */
  readonly note?: string;
}

export interface Benchmark {
  readonly name: string;
  readonly description: string;
  run(ctx: BenchContext): Promise<BenchRow[]>;
}

/** A figure as rows print it: thousands separated from 100 up, two decimals below. */
export function formatFigure(n: number | undefined): string {
  return n === undefined ? "-" : n >= 100 ? Math.round(n).toLocaleString("en-US") : n.toFixed(2);
}

/** weir / baseline, two decimals ("-" without a baseline). */
export function ratioOf(r: BenchRow): string {
  return r.baseline ? (r.weir / r.baseline).toFixed(2) : "-";
}

export function rate(count: number, ms: number): number {
  return Math.round((count / ms) * 1000);
}

export function rssMb(): number {
  return Math.round(process.memoryUsage().rss / (1024 * 1024));
}

/**
 * Node's command-line flags and environment of a child that runs as `weir run` sets V8 (bin/weir.mjs: 32 MB
 * semi-spaces by its shebang, heap growth 50%).
 */
export const AS_WEIR_RUN = { flags: ["--max-semi-space-size=32"], env: { WEIR_HEAP_GROWING_PERCENT: "50" } } as const;

/** Runs `node <args>` with `env` added; resolves with its stdout once it exits 0 (a bench's child process). */
export function runChild(args: string[], env: Record<string, string>): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, args, { stdio: ["ignore", "pipe", "inherit"], env: { ...process.env, ...env } });
    let out = "";
    child.stdout.on("data", (d) => (out += d));
    child.on("error", reject);
    child.on("close", (code) => (code === 0 ? resolve(out) : reject(new Error(`bench child ${args.filter((a) => a.endsWith(".ts")).join(" ")} exited with ${code}`))));
  });
}
