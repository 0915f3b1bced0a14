// `weir status [job]`, `weir stop <job>` and `weir advance-clock <job> <ms>`: ask running jobs over their
// control subjects. These never start a server: with no server there are no jobs to show.

import type { NatsConnection } from "@nats-io/transport-node";
import { connectNats, permissionDenials } from "../../nats/connect.ts";
import { resolveNatsSettings, type NatsFlags } from "../../nats/connection-settings.ts";
import { defaultConfigPath, probePort, readListen } from "../../nats/embedded.ts";
import type { JobStatus } from "../../../actors/job/job-runner.ts";
import { advanceJobClock, askControl, ControlSilence, onJobEnded, pingJobs, requestControl } from "../../../actors/job/control-client.ts";
import { ControlVerb, type JobEnded, type PingReply } from "../../../actors/job/control-protocol.ts";
import { ErrorCode, WeirError, messageOf } from "../../core/errors.ts";
import { CheckpointStore } from "../../checkpoint/store.ts";
import { GlobalNames, JobNames } from "../../core/names.ts";
import { formatCount } from "../progress.ts";
import { formatLastStatus, readLastStatus } from "../../../actors/job/last-status.ts";
import { stoppedWhileFailing } from "../../../actors/job/restart-strategy.ts";

async function controlConnection(flags: NatsFlags): Promise<NatsConnection | undefined> {
  const settings = resolveNatsSettings({ flags });
  if (settings.servers.length > 0) return connectNats(settings, "weir-cli");
  const { host, port } = readListen(defaultConfigPath());
  const probe = await probePort(host, port);
  if (probe.kind === "free") return undefined;
  return connectNats({ ...settings, servers: [`nats://${host}:${port}`] }, "weir-cli");
}

export async function listJobs(nc: NatsConnection, waitMs = 400): Promise<PingReply[]> {
  return pingJobs(nc, waitMs);
}

export async function fetchStatus(nc: NatsConnection, job: string): Promise<JobStatus | undefined> {
  return requestControl(nc, job, ControlVerb.Status, {});
}

/** The current failure, or while the job restarts after one, the last one (a restart clears the current). */
function failureText(s: JobStatus): string {
  if (s.failure) return `, failure: ${s.failure}`;
  const last = s.failures?.[s.failures.length - 1];
  return last ? `, restarts ${s.restarts}, last failure: ${last.error}` : "";
}

/** The mode the launch runs in: "automatic" resolves to batch, or to streaming that may sort a backlog. */
export function describeMode(s: Pick<JobStatus, "mode" | "backlogSorted">): string | undefined {
  if (s.mode !== "automatic") return s.mode;
  return `automatic: streaming, ${s.backlogSorted ? "backlogs sorted by key" : "backlogs not sorted (checkpointIntervalDuringBacklogMs is not 0)"}`;
}

function modeText(s: JobStatus): string {
  const mode = describeMode(s);
  return mode === undefined ? "" : `; mode ${mode}`;
}

export function formatStatus(s: JobStatus): string {
  const outage = s.natsDisconnectedSince ? `, NATS disconnected for ${((Date.now() - Date.parse(s.natsDisconnectedSince)) / 1000).toFixed(1)}s` : "";
  const head = `${s.job}: ${s.state}${outage}, up ${(s.uptimeMs / 1000).toFixed(1)}s, in ${formatCount(s.recordsIn)}, out ${formatCount(s.recordsOut)}, dead letters ${s.deadLetters}${failureText(s)}`;
  const next = s.nextRestartDelayMs !== undefined ? `, next restart in ${(Math.max(0, Date.parse(s.nextRestartAt!) - Date.now()) / 1000).toFixed(1)}s (delay ${(s.nextRestartDelayMs / 1000).toFixed(1)}s)` : "";
  const restarts = `  restarts: ${s.restarts}${next}; strategy ${s.restartStrategy ?? "-"}${s.natsReplicas !== undefined ? `; NATS replicas ${s.natsReplicas}` : ""}${modeText(s)}`;
  const cols = ["subtask", "state", "in", "out", "watermark", "backpressure", "queued", "pending", "in flight", "state cache", "timers ev/proc"];
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
      inFlight(Object.values(t.operators)),
      cache ? stateCache(cache) : "-",
      formatTimers(Object.values(t.operators)),
    ];
  });
  const widths = cols.map((c, i) => Math.max(c.length, ...rows.map((r) => r[i]!.length)));
  const fmt = (r: string[]) => r.map((x, i) => x.padEnd(widths[i]!)).join("  ").trimEnd();
  return [head, restarts, ...formatCheckpoints(s), ...formatWorkers(s), `  ${fmt(cols)}`, ...rows.map((r) => `  ${fmt(r)}`)].join("\n");
}

/** "checkpoints: 12 completed, 0 aborted, 40 skipped at rest; last 12 (checkpoint) 3.1s ago, took 45 ms, 1.2k entries changed; restored from 9". */
function formatCheckpoints(s: JobStatus): string[] {
  const c = s.checkpoints;
  if (!c) return [];
  const last = c.lastCompleted;
  const lastText = last ? `; last ${last.id} (${last.kind}) ${((Date.now() - last.triggeredAt - last.durationMs) / 1000).toFixed(1)}s ago, took ${last.durationMs} ms, ${formatCount(last.entries)} entries changed` : "";
  const failure = c.lastFailure ? `; last failure: ${c.lastFailure}` : "";
  const skipped = c.skipped ? `, ${c.skipped} skipped at rest` : "";
  // What the run started from (a savepoint is a checkpoint kept: weir checkpoints <job> lists both).
  const restored = s.restoredFrom !== undefined ? `; restored from ${s.restoredFrom}` : "";
  return [`  checkpoints: ${c.completed} completed, ${c.aborted} aborted${skipped}${c.inFlight !== undefined ? `, checkpoint ${c.inFlight} in flight` : ""}${lastText}${restored}${failure}`];
}

/** Records in flight in a keyed subtask's async execution, and its state requests waiting in a batch ("-": none runs). */
function inFlight(operators: ReadonlyArray<Readonly<Record<string, number>>>): string {
  const async = operators.filter((m) => m.inFlightRecords !== undefined);
  if (async.length === 0) return "-";
  const records = async.reduce((n, m) => n + (m.inFlightRecords ?? 0), 0);
  const buffered = async.reduce((n, m) => n + (m.activeBufferSize ?? 0), 0);
  // Records that stopped finishing, or one key's record running, for asyncState.stallTimeoutMs (a user function that never settles, say).
  const stalled = async.some((m) => m.stalled === 1) ? " stalled" : "";
  return `${buffered > 0 ? `${records} (${buffered} batched)` : String(records)}${stalled}`;
}

interface WorkerLine { id: string; host: string; pid: number; leader: boolean; subtasks: readonly string[]; heartbeatAgeMs?: number; lagMs?: number }

/** With workers (actors/worker/): the epoch, each worker, and the rebalances with their causes. */
function formatWorkers(s: JobStatus): string[] {
  const w = s as JobStatus & { workers?: readonly WorkerLine[]; epoch?: number; rebalances?: ReadonlyArray<{ at: string; epoch: number; cause: string }> };
  if (!w.workers || w.workers.length === 0) return [];
  const lines = [`  epoch ${w.epoch ?? "-"}, ${w.workers.length} worker(s):`];
  for (const x of w.workers) {
    lines.push(`    ${x.leader ? "*" : " "} ${x.id} (${x.host} pid ${x.pid}) ${x.subtasks.length} subtasks, heartbeat ${x.heartbeatAgeMs ?? 0} ms ago, event-loop lag ${x.lagMs ?? 0} ms`);
  }
  for (const r of (w.rebalances ?? []).slice(-5)) lines.push(`    epoch ${r.epoch} at ${r.at}: ${r.cause}`);
  return lines;
}

/** "1.0k entries 210 KiB, 95% hits (12.3k/650)": the keyed state cache of a subtask. */
function stateCache(m: Readonly<Record<string, number>>): string {
  const hits = m.cacheHits ?? 0;
  const misses = m.cacheMisses ?? 0;
  const ratio = hits + misses > 0 ? `${Math.round((100 * hits) / (hits + misses))}% hits` : "no reads";
  const kib = (m.cacheBytes ?? 0) / 1024;
  const size = kib >= 1024 ? `${(kib / 1024).toFixed(1)} MiB` : `${kib.toFixed(0)} KiB`;
  return `${formatCount(m.cacheEntries!)} entries ${size}, ${ratio} (${formatCount(hits)}/${formatCount(misses)})`;
}

/** Pending event/processing-time timers of a subtask's keyed operators, and how many it restored. */
function formatTimers(operators: ReadonlyArray<Record<string, number>>): string {
  const keyed = operators.filter((m) => m.eventTimers !== undefined);
  if (keyed.length === 0) return "-";
  const sum = (name: string) => keyed.reduce((n, m) => n + (m[name] ?? 0), 0);
  const restored = sum("restoredEventTimers") + sum("restoredProcessingTimers") > 0 ? ` (restored ${sum("restoredEventTimers")}/${sum("restoredProcessingTimers")})` : "";
  return `${formatCount(sum("eventTimers"))}/${formatCount(sum("processingTimers"))}${restored}`;
}

export async function statusCommand(job: string | undefined, flags: NatsFlags & { json?: boolean }): Promise<number> {
  const nc = await controlConnection(flags);
  if (!nc) {
    process.stdout.write("no jobs: the embedded NATS server is not running (start one with `weir nats`)\n");
    return job ? 1 : 0;
  }
  const denied = permissionDenials(nc);
  try {
    const names = job ? [job] : (await listJobs(nc)).map((j) => j.job);
    refusedBy(denied);
    if (names.length === 0) {
      process.stdout.write(flags.json ? "[]\n" : "no running jobs\n");
      return 0;
    }
    let missing = 0;
    // --json: one object for the job asked for; for all jobs, one array (objects back to back are not JSON).
    const objects: unknown[] = [];
    for (const name of names) {
      const s = await fetchStatus(nc, name);
      refusedBy(denied);
      if (!s) {
        missing++;
        const last = await readLastStatus(nc, name);
        // Credentials that reach the control subjects but not JetStream: the last state is there, unread.
        const unread = last === undefined ? denied()?.message : undefined;
        // `state` at the top as in a running job's status object: what a script reads first.
        if (flags.json) objects.push({ job: name, running: false, ...(last ? { state: last.state, last } : {}), ...(unread ? { lastUnreadable: unread } : {}) });
        else process.stdout.write(`${last ? formatLastStatus(last, Date.now()) : `${name}: not running${unread ? ` (its last state, in the KV bucket ${GlobalNames.jobsBucket}, could not be read: ${unread})` : ""}`}\n`);
        continue;
      }
      if (flags.json) objects.push(s);
      else process.stdout.write(`${formatStatus(s)}\n`);
    }
    if (flags.json) process.stdout.write(`${JSON.stringify(job ? objects[0] : objects, null, 2)}\n`);
    if (job && missing) process.stderr.write(`weir: job "${job}" is not running\n`);
    return missing ? 1 : 0;
  } finally {
    await nc.close();
  }
}

/** "No answer" because the server denied the request is a permission error, not a job that is gone. */
function refusedBy(denied: () => WeirError | undefined): void {
  const e = denied();
  if (e) throw e;
}

/**
 * The id of the job's latest checkpoint when it is a savepoint, else undefined; also undefined when the
 * checkpoint bucket cannot be read (credentials that only reach the job's control subjects): the stop
 * itself was confirmed, and only the id is left out.
 */
async function latestSavepoint(nc: NatsConnection, job: string): Promise<number | undefined> {
  try {
    const latest = await (await CheckpointStore.openExisting(nc, new JobNames(job)))?.latest();
    return latest?.pointer.kind === "savepoint" ? latest.pointer.id : undefined;
  } catch {
    return undefined;
  }
}

/** A job that stops answering gets this long for its end notice to arrive before we give up on it. */
const END_NOTICE_GRACE_MS = 2000;

/**
 * `weir stop <job>`: exit 0 only when the job confirmed it stopped (its end notice, or its own status
 * saying so). "No answer" is not "stopped": a job that failed, or vanished, is reported with a non-zero
 * exit. A job failing or restarting ignores a stop request, so it is asked again once it runs again.
 */
export async function stopCommand(job: string, flags: NatsFlags & { savepoint?: boolean; timeout?: number }): Promise<number> {
  const nc = await controlConnection(flags);
  if (!nc) throw new WeirError(ErrorCode.NatsUnreachable, `job ${job} is not running (no NATS server to ask)`);
  const timeoutMs = (flags.timeout ?? 60) * 1000;
  const denied = permissionDenials(nc);
  try {
    // Listen before asking: the end may follow the request at once.
    let end: JobEnded | undefined;
    let noticed: () => void = () => {};
    const endNotice = new Promise<void>((resolve) => { noticed = resolve; });
    onJobEnded(nc, job, (e) => { end = e; noticed(); }, (e) => process.stderr.write(`weir: ${messageOf(e)}\n`));
    await nc.flush();

    const ask = () => requestControl(nc, job, ControlVerb.Stop, { savepoint: Boolean(flags.savepoint) });
    const deadline = Date.now() + timeoutMs;
    // A job that listens but does not answer (frozen, overloaded) is asked again until the deadline.
    let answer = await askControl(nc, job, ControlVerb.Stop, { savepoint: Boolean(flags.savepoint) });
    if (answer === ControlSilence.NoAnswer) process.stderr.write(`weir: job ${job} does not answer (it listens, no reply within 2 s); asking again for up to ${timeoutMs / 1000}s\n`);
    while (answer === ControlSilence.NoAnswer && !end && Date.now() < deadline) answer = await askControl(nc, job, ControlVerb.Stop, { savepoint: Boolean(flags.savepoint) });
    refusedBy(denied);
    if (answer === ControlSilence.NoAnswer && !end) throw new WeirError(ErrorCode.InvalidJob, `job ${job} did not answer the stop request within ${timeoutMs / 1000}s: it listens but does not reply (is its process frozen or overloaded?)`);
    const first = typeof answer === "string" ? undefined : answer;
    if (!first && !end) throw new WeirError(ErrorCode.InvalidJob, `job ${job} is not running`);
    if (first && first.ok === false) throw new WeirError(ErrorCode.InvalidJob, `cannot stop job ${job}: ${first.error ?? first.state}`);
    let state: string = first?.state ?? "stopping";
    let lastFailure: string | undefined;
    let toldWaiting = false;
    let silent = false;
    while (!end && !["stopped", "finished", "failed", "cancelled"].includes(state)) {
      if (Date.now() >= deadline) break;
      if (state === "running") {
        // It ignored the stop while failing or restarting (or failed while stopping and restarted): again.
        const again = await ask();
        if (again?.state) state = again.state;
      } else if (!toldWaiting && ((state === "failing" && flags.savepoint) || state === "restarting" || state === "deploying")) {
        // A failing job stops at once (no final checkpoint), unless a savepoint was asked for.
        toldWaiting = true;
        process.stderr.write(`weir: ${job} is ${state}${lastFailure ? ` after a failure (${lastFailure})` : ""}; it will be stopped once it runs again\n`);
      }
      await Promise.race([endNotice, new Promise((r) => setTimeout(r, 200))]);
      if (end) break;
      const s = await fetchStatus(nc, job);
      if (!s) {
        await Promise.race([endNotice, new Promise((r) => setTimeout(r, END_NOTICE_GRACE_MS))]);
        silent = !end;
        break;
      }
      state = s.state;
      lastFailure = s.failure ?? s.failures?.[s.failures.length - 1]?.error ?? lastFailure;
    }
    const final = end?.state ?? state;
    if (final === "stopped" && end?.failure !== undefined) throw new WeirError(ErrorCode.InvalidJob, stoppedWhileFailing(job, end.failure));
    if (final === "stopped" || final === "finished") {
      // As `flink stop` names the savepoint it took: which one the next `weir run` resumes from.
      const savepoint = flags.savepoint && final === "stopped" ? await latestSavepoint(nc, job) : undefined;
      process.stdout.write(`${job}: ${final}${savepoint !== undefined ? ` with savepoint ${savepoint} (weir run resumes from it)` : ""}\n`);
      return 0;
    }
    if (final === "failed") throw new WeirError(ErrorCode.InvalidJob, `job ${job} failed instead of stopping: ${end?.failure ?? lastFailure ?? "no reason given"}`);
    if (final === "cancelled") throw new WeirError(ErrorCode.InvalidJob, `job ${job} was cancelled, not stopped gracefully`);
    const why = silent ? `it stopped answering while ${state}` : `it is still ${state} after ${timeoutMs / 1000}s`;
    throw new WeirError(ErrorCode.InvalidJob, `could not confirm that job ${job} stopped: ${why}${lastFailure ? ` (last failure: ${lastFailure})` : ""}`);
  } finally {
    await nc.close();
  }
}

/** `weir advance-clock <job> <ms>`: prints the job's processing time after the move. */
export async function advanceClockCommand(job: string, ms: number, flags: NatsFlags): Promise<number> {
  const nc = await controlConnection(flags);
  if (!nc) throw new WeirError(ErrorCode.NatsUnreachable, `job ${job} is not running (no NATS server to ask)`);
  try {
    const now = await advanceJobClock(nc, job, ms);
    process.stdout.write(`${job}: processing time ${new Date(now).toISOString()} (${now} ms)\n`);
    return 0;
  } finally {
    await nc.close();
  }
}
