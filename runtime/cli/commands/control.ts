// `weir status [job]` and `weir stop <job>`: ask running jobs over their control subjects. These never
// start a server: with no server there are no jobs to show.

import type { NatsConnection } from "@nats-io/transport-node";
import { connectNats } from "../../nats/connect.ts";
import { defaultConfigPath, probePort, readListen } from "../../nats/embedded.ts";
import { GlobalNames, JobNames } from "../../names.ts";
import type { JobStatus } from "../../exec/job-runner.ts";
import { ErrorCode, WeirError } from "../../errors.ts";
import { formatCount } from "../progress.ts";

async function controlConnection(explicit?: string): Promise<NatsConnection | undefined> {
  const url = explicit ?? process.env.WEIR_NATS_URL;
  if (url) return connectNats(url, "weir-cli");
  const { host, port } = readListen(defaultConfigPath());
  const probe = await probePort(host, port);
  if (probe.kind === "free") return undefined;
  return connectNats(`nats://${host}:${port}`, "weir-cli");
}

async function request<T>(nc: NatsConnection, subject: string, body: unknown = {}, timeout = 2000): Promise<T | undefined> {
  try {
    const m = await nc.request(subject, JSON.stringify(body), { timeout });
    return m.json<T>();
  } catch (e) {
    if (/no responders|503|timeout/i.test((e as Error).message ?? "")) return undefined;
    throw e;
  }
}

export async function listJobs(nc: NatsConnection, waitMs = 400): Promise<Array<{ job: string; state: string; startedAt: string }>> {
  const out: Array<{ job: string; state: string; startedAt: string }> = [];
  try {
    const replies = await nc.requestMany(GlobalNames.jobsPing, "", { maxWait: waitMs });
    for await (const m of replies) out.push(m.json());
  } catch { /* no responders: no jobs */ }
  return out.sort((a, b) => a.job.localeCompare(b.job));
}

export async function fetchStatus(nc: NatsConnection, job: string): Promise<JobStatus | undefined> {
  return request<JobStatus>(nc, new JobNames(job).control("status"));
}

export function formatStatus(s: JobStatus): string {
  const head = `${s.job}: ${s.state}, up ${(s.uptimeMs / 1000).toFixed(1)}s, in ${formatCount(s.recordsIn)}, out ${formatCount(s.recordsOut)}, dead letters ${s.deadLetters}${s.failure ? `, failure: ${s.failure}` : ""}`;
  const cols = ["subtask", "state", "in", "out", "watermark", "backpressure", "queued", "pending", "state cache", "timers ev/proc"];
  const rows = s.subtasks.map((t) => {
    const cache = Object.values(t.operators).find((m) => m.cacheEntries !== undefined);
    return [
      `${t.name.length > 48 ? `${t.name.slice(0, 45)}...` : t.name}#${t.index}`,
      t.state,
      formatCount(t.recordsIn),
      formatCount(t.recordsOut),
      t.watermark === null ? "-" : t.watermark >= Number.MAX_SAFE_INTEGER ? "MAX" : String(t.watermark),
      `${(t.backpressuredMs / 1000).toFixed(1)}s`,
      String(t.queuedFrames),
      String(t.pendingFrames),
      cache ? `${formatCount(cache.cacheEntries!)} entries` : "-",
      formatTimers(Object.values(t.operators)),
    ];
  });
  const widths = cols.map((c, i) => Math.max(c.length, ...rows.map((r) => r[i]!.length)));
  const fmt = (r: string[]) => r.map((x, i) => x.padEnd(widths[i]!)).join("  ").trimEnd();
  return [head, `  ${fmt(cols)}`, ...rows.map((r) => `  ${fmt(r)}`)].join("\n");
}

/** Pending event/processing-time timers of a subtask's keyed operators, and how many it restored. */
function formatTimers(operators: ReadonlyArray<Record<string, number>>): string {
  const keyed = operators.filter((m) => m.eventTimers !== undefined);
  if (keyed.length === 0) return "-";
  const sum = (name: string) => keyed.reduce((n, m) => n + (m[name] ?? 0), 0);
  const restored = sum("restoredEventTimers") + sum("restoredProcessingTimers") > 0 ? ` (restored ${sum("restoredEventTimers")}/${sum("restoredProcessingTimers")})` : "";
  return `${formatCount(sum("eventTimers"))}/${formatCount(sum("processingTimers"))}${restored}`;
}

export async function statusCommand(job: string | undefined, flags: { nats?: string; json?: boolean }): Promise<number> {
  const nc = await controlConnection(flags.nats);
  if (!nc) {
    process.stdout.write("no jobs: the embedded NATS server is not running (start one with `weir nats`)\n");
    return job ? 1 : 0;
  }
  try {
    const names = job ? [job] : (await listJobs(nc)).map((j) => j.job);
    if (names.length === 0) {
      process.stdout.write("no running jobs\n");
      return 0;
    }
    let missing = 0;
    for (const name of names) {
      const s = await fetchStatus(nc, name);
      if (!s) { missing++; process.stdout.write(`${name}: not running\n`); continue; }
      process.stdout.write(`${flags.json ? JSON.stringify(s, null, 2) : formatStatus(s)}\n`);
    }
    return missing ? 1 : 0;
  } finally {
    await nc.close();
  }
}

export async function stopCommand(job: string, flags: { nats?: string; savepoint?: boolean; timeout?: number }): Promise<number> {
  const nc = await controlConnection(flags.nats);
  if (!nc) throw new WeirError(ErrorCode.NatsUnreachable, `job ${job} is not running (no NATS server to ask)`);
  try {
    const names = new JobNames(job);
    const ack = await request<{ ok: boolean; state: string }>(nc, names.control("stop"), { savepoint: Boolean(flags.savepoint) });
    if (!ack) throw new WeirError(ErrorCode.InvalidJob, `job ${job} is not running`);
    const deadline = Date.now() + (flags.timeout ?? 60_000);
    while (Date.now() < deadline) {
      const s = await fetchStatus(nc, job);
      if (!s || ["stopped", "finished", "cancelled", "failed"].includes(s.state)) {
        process.stdout.write(`${job}: ${s?.state ?? "stopped"}\n`);
        return s?.state === "failed" ? 1 : 0;
      }
      await new Promise((r) => setTimeout(r, 200));
    }
    throw new WeirError(ErrorCode.InvalidJob, `job ${job} did not stop within ${(flags.timeout ?? 60_000) / 1000}s`);
  } finally {
    await nc.close();
  }
}
