// One row of `npm run soak`: the job's and the server's RSS, the consumers on every stream, the size of
// each stream the job uses, and the job's own figures (records in/out, last checkpoint, state cache entries).
import { readFileSync } from "node:fs";
import type { NatsConnection } from "@nats-io/transport-node";
import { jetstreamManager } from "@nats-io/jetstream";
import type { JobStatus } from "../actors/job/job-runner.ts";
import { JobNames } from "../runtime/internal.ts";

export interface Sample {
  readonly minute: number;
  /** Figure name → value (MB for RSS, messages / KiB for streams, plain counts otherwise). */
  readonly figures: Readonly<Record<string, number>>;
  readonly consumersByStream: Readonly<Record<string, number>>;
}

/** The streams of job `job` worth watching, with a short label for the table. */
export function watchedStreams(job: string): ReadonlyArray<readonly [label: string, stream: string]> {
  return [
    ["state", `KV_weir_${job}_state`],
    ["ckpt", `KV_weir_${job}_ckpt`],
    ["changelog", `weir_${job}_changelog`],
    ["staging", `weir_${job}_staging`],
    ["dlq", `weir_${job}_dlq`],
    ["in", "SOAK_IN"],
    ["counts", "SOAK_COUNTS"],
    ["windows", "SOAK_WINDOWS"],
  ];
}

/** VmRSS of a process, in MB (NaN once it is gone). */
export function rssOf(pid: number): number {
  try {
    const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
    return m ? Math.round(Number(m[1]) / 1024) : Number.NaN;
  } catch {
    return Number.NaN;
  }
}

/** The job's V8 heap in use and its external (Buffer) memory, in MB, from its Prometheus /metrics. */
async function jobMemory(metricsUrl: string | undefined): Promise<{ heap: number; heapTotal: number; external: number }> {
  if (metricsUrl === undefined) return { heap: Number.NaN, heapTotal: Number.NaN, external: Number.NaN };
  try {
    const text = await (await fetch(metricsUrl, { signal: AbortSignal.timeout(10_000) })).text();
    const value = (name: string) => {
      const m = new RegExp(`^${name}(?:\\{[^}]*\\})? ([0-9.e+]+)$`, "m").exec(text);
      return m ? Math.round(Number(m[1]) / (1024 * 1024)) : Number.NaN;
    };
    return { heap: value("weir_nodejs_heap_size_used_bytes"), heapTotal: value("weir_nodejs_heap_size_total_bytes"), external: value("weir_nodejs_external_memory_bytes") };
  } catch {
    return { heap: Number.NaN, heapTotal: Number.NaN, external: Number.NaN };
  }
}

export async function sample(nc: NatsConnection, job: string, pids: { job: number; server: number }, minute: number, metricsUrl?: string): Promise<Sample> {
  const jsm = await jetstreamManager(nc, { timeout: 10_000 });
  const consumersByStream: Record<string, number> = {};
  const memory = await jobMemory(metricsUrl);
  const figures: Record<string, number> = { "job RSS MB": rssOf(pids.job), "job heap MB": memory.heap, "job heap total MB": memory.heapTotal, "job external MB": memory.external, "server RSS MB": rssOf(pids.server) };
  const infos = new Map<string, { messages: number; bytes: number }>();
  for await (const si of jsm.streams.list()) {
    consumersByStream[si.config.name] = si.state.consumer_count;
    infos.set(si.config.name, { messages: si.state.messages, bytes: si.state.bytes });
  }
  figures["consumers"] = Object.values(consumersByStream).reduce((a, b) => a + b, 0);
  for (const [label, stream] of watchedStreams(job)) {
    const i = infos.get(stream);
    figures[`${label} msgs`] = i?.messages ?? 0;
    figures[`${label} KiB`] = Math.round((i?.bytes ?? 0) / 1024);
  }
  const s = await jobStatus(nc, job);
  figures["records in"] = s?.recordsIn ?? Number.NaN;
  figures["records out"] = s?.recordsOut ?? Number.NaN;
  figures["checkpoint"] = s?.checkpoints?.lastCompleted?.id ?? Number.NaN;
  figures["restarts"] = s?.restarts ?? Number.NaN;
  // Entries in the keyed state caches of every subtask: removed state (fired windows) must not pile up.
  figures["cache entries"] = s === undefined ? Number.NaN
    : s.subtasks.reduce((n, t) => n + (Object.values(t.operators).find((m) => m.cacheEntries !== undefined)?.cacheEntries ?? 0), 0);
  return { minute, figures, consumersByStream };
}

/** The job's status, with more patience than `weir status` has: a busy job on a shared machine answers late. */
export async function jobStatus(nc: NatsConnection, job: string): Promise<JobStatus | undefined> {
  try {
    return (await nc.request(new JobNames(job).control("status"), "{}", { timeout: 15_000 })).json<JobStatus>();
  } catch {
    return undefined;
  }
}
