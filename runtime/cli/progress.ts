// The live progress line of `weir run` / the demo: records in/out, rates, backpressure, dead letters.
// On a terminal it redraws one line (log-update); otherwise it prints a plain line every few seconds.

import { createLogUpdate } from "log-update";
import type { JobStatus } from "../../actors/job/job-runner.ts";

export interface ProgressOptions {
  readonly intervalMs?: number;
  readonly stream?: NodeJS.WriteStream;
  /** Extra text after the standard figures (e.g. the demo's per-page counts). */
  readonly extra?: () => string;
  /** Off a terminal: receives each periodic line instead of the stream (a structured logger). */
  readonly onLine?: (text: string, status: JobStatus) => void;
}

export function formatCount(n: number): string {
  if (n >= 1e6) return `${(n / 1e6).toFixed(2)}M`;
  if (n >= 1e4) return `${(n / 1e3).toFixed(1)}k`;
  return String(Math.round(n));
}

/** `n` things as a count reads: "1 record", "2 records", "12.5k records". */
export function counted(n: number, one: string, many = `${one}s`): string {
  return `${formatCount(n)} ${n === 1 ? one : many}`;
}

/** Growth of a counter since the last line; a restart resets the counters, then all of it is new. */
function sinceLast(now: number, last: number): number {
  return now >= last ? now - last : now;
}

export class ProgressReporter {
  private timer: NodeJS.Timeout | undefined;
  private last: { at: number; in: number; out: number; bp: number } | undefined;
  private readonly tty: boolean;
  private readonly json: boolean;
  private readonly update: ((text: string) => void) & { done?: () => void };

  constructor(private readonly status: () => JobStatus, private readonly options: ProgressOptions = {}) {
    const stream = options.stream ?? process.stderr;
    this.tty = Boolean(stream.isTTY) && !process.env.CI;
    this.update = this.tty ? createLogUpdate(stream) : (text: string) => stream.write(`${text}\n`);
    this.json = !this.tty && options.onLine !== undefined;
  }

  start(): void {
    const interval = this.options.intervalMs ?? (this.tty ? 500 : 5000);
    this.timer = setInterval(() => this.render(), interval);
    this.timer.unref();
  }

  /** One line describing the job now. */
  line(s: JobStatus = this.status()): string {
    const now = performance.now();
    const bp = s.subtasks.reduce((n, x) => n + x.backpressuredMs, 0);
    let rates = "";
    let pressure = "";
    if (this.last) {
      const secs = (now - this.last.at) / 1000;
      rates = ` ${formatCount(sinceLast(s.recordsIn, this.last.in) / secs)}/s`;
      const share = s.subtasks.length ? sinceLast(bp, this.last.bp) / (now - this.last.at) / s.subtasks.length : 0;
      pressure = `  backpressure ${Math.min(100, Math.round(share * 100))}%`;
    }
    this.last = { at: now, in: s.recordsIn, out: s.recordsOut, bp };
    const extra = this.options.extra?.() ?? "";
    const checkpoints = s.checkpoints ? `  checkpoints ${s.checkpoints.completed}` : "";
    return `${s.job} ${s.state} ${(s.uptimeMs / 1000).toFixed(1)}s  in ${formatCount(s.recordsIn)}${rates}  out ${formatCount(s.recordsOut)}${pressure}  dlq ${s.deadLetters}${checkpoints}${extra ? `  ${extra}` : ""}`;
  }

  render(): void {
    if (!this.json) return this.update(this.line());
    const s = this.status();
    this.options.onLine!(this.line(s), s);
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    if (this.tty) (this.update as { done?: () => void }).done?.();
  }
}
