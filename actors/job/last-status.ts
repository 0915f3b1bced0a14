// The last known status of each job, kept in the KV bucket `weir_jobs` (key: the job name) so that
// `weir status <job>` can still say what happened once the process is gone: "failed 3 min ago: <reason>".
// Written when the job's state changes and every few seconds while it runs (never per record); one write
// in flight at a time, the newest summary wins. With workers it is also what a new leader carries on
// from (actors/worker/takeover-history.ts): the restarts, last failures and rebalances of the one before.

import { hostname } from "node:os";
import * as t from "io-ts";
import { isRight } from "fp-ts/lib/Either.js";
import type { NatsConnection } from "@nats-io/transport-node";
import { Kvm, type KV } from "@nats-io/kv";
import { messageOf } from "../../runtime/core/errors.ts";
import { GlobalNames } from "../../runtime/core/names.ts";
import { jetstreamManager } from "@nats-io/jetstream";
import { reconcileStream } from "../../state/backends/stream-replicas.ts";

const Failure = t.exact(t.intersection([t.type({ at: t.string, error: t.string, restarted: t.boolean }), t.partial({ subtask: t.string })]));
const Rebalance = t.exact(t.type({ at: t.string, epoch: t.number, cause: t.string }));

/** As stored; the fields of the partial part came later: an entry written before them still reads. */
export const LastStatusCodec = t.exact(t.intersection([
  t.type({
    job: t.string, state: t.string,
    /** When this was written (ms since the epoch). */
    at: t.number,
    startedAt: t.string, restarts: t.number, restartStrategy: t.string,
    recordsIn: t.number, recordsOut: t.number, deadLetters: t.number, host: t.string, pid: t.number,
  }),
  t.partial({
    failure: t.string, nextRestartAt: t.string, lastCheckpoint: t.number,
    /** Of `restarts`, those not counted against the restart strategy (NATS outages, lost workers). */
    restartsNotCounted: t.number,
    /** The last few failures and rebalances (bounded: LAST_FAILURES_KEPT, LAST_REBALANCES_KEPT). */
    failures: t.array(Failure), rebalances: t.array(Rebalance),
    /** With workers: the leading worker that wrote it. */
    worker: t.string,
  }),
], "LastStatus"));
export type LastStatus = t.TypeOf<typeof LastStatusCodec>;

/** An entry stays small (one KV value, never per record): so many failures, each error cut to so many characters. */
export const LAST_FAILURES_KEPT = 5;
export const LAST_FAILURE_CHARS = 500;
export const LAST_REBALANCES_KEPT = 10;

/** How often a running job refreshes its entry. */
export const LAST_STATUS_INTERVAL_MS = 5000;

export class LastStatusWriter {
  private kv: Promise<KV | undefined> | undefined;
  private writing: Promise<void> = Promise.resolve();
  private next: LastStatus | undefined;
  private busy = false;

  /** `replicas`: of the jobs bucket (shared by every job: one with fewer is raised to it, never lowered). */
  constructor(private readonly nc: NatsConnection, private readonly log: (m: string) => void, private readonly replicas = 1) {}

  private bucket(): Promise<KV | undefined> {
    return (this.kv ??= this.openBucket().catch((e: unknown) => {
      // Diagnostics only: a job runs without them.
      this.log(`last-known status is not kept (bucket ${GlobalNames.jobsBucket}: ${messageOf(e)})`);
      return undefined;
    }));
  }

  private async openBucket(): Promise<KV> {
    const kv = await new Kvm(this.nc).create(GlobalNames.jobsBucket, { history: 1, replicas: this.replicas });
    const info = (await kv.status()).streamInfo;
    if ((info.config.num_replicas || 1) < this.replicas) await reconcileStream(await jetstreamManager(this.nc), info, { replicas: this.replicas }, this.log);
    return kv;
  }

  /** Queues `status` (replacing one not yet written). */
  write(status: Omit<LastStatus, "at" | "host" | "pid">): void {
    this.next = { ...status, at: Date.now(), host: hostname(), pid: process.pid };
    if (this.busy) return;
    this.busy = true;
    this.writing = (async () => {
      try {
        while (this.next) {
          const s = this.next;
          this.next = undefined;
          const kv = await this.bucket();
          if (!kv) return;
          await kv.put(s.job, JSON.stringify(s)).catch((e: unknown) => this.log(`last-known status not written: ${messageOf(e)}`));
        }
      } finally {
        this.busy = false;
      }
    })();
  }

  /** Resolves once everything queued is written. */
  flush(): Promise<void> {
    return this.writing;
  }
}

export async function readLastStatus(nc: NatsConnection, job: string): Promise<LastStatus | undefined> {
  return (await readLastStatusEntry(nc, job))?.status;
}

/** The entry and when the server stored it (a server's time, comparable with the job log's). */
export async function readLastStatusEntry(nc: NatsConnection, job: string): Promise<{ status: LastStatus; storedAt: Date } | undefined> {
  try {
    const kv = await new Kvm(nc).open(GlobalNames.jobsBucket);
    const e = await kv.get(job);
    if (!e || e.operation !== "PUT" || e.value.length === 0) return undefined;
    const decoded = LastStatusCodec.decode(e.json<unknown>());
    return isRight(decoded) ? { status: decoded.right, storedAt: e.created } : undefined;
  } catch {
    return undefined;
  }
}

/** "3 min ago", "12 s ago", "2 h ago", "4 d ago". */
export function formatAge(ms: number): string {
  const s = Math.max(0, Math.round(ms / 1000));
  if (s < 90) return `${s} s ago`;
  if (s < 90 * 60) return `${Math.round(s / 60)} min ago`;
  if (s < 36 * 3600) return `${Math.round(s / 3600)} h ago`;
  return `${Math.round(s / 86400)} d ago`;
}

/** One line for a job that is not running: "wc: not running; failed 3 min ago: <reason> (...)". */
export function formatLastStatus(s: LastStatus, now: number): string {
  const age = formatAge(now - s.at);
  const ended = ["finished", "stopped", "failed", "cancelled"].includes(s.state);
  const what = ended
    ? `${s.state} ${age}${s.failure ? `: ${s.failure}` : ""}`
    // The process went away without reporting an end (killed, host lost).
    : `last seen ${s.state} ${age} (pid ${s.pid} on ${s.host}); it did not end cleanly${s.failure ? `; last failure: ${s.failure}` : ""}`;
  const counts = `in ${s.recordsIn}, out ${s.recordsOut}, dead letters ${s.deadLetters}, restarts ${s.restarts}${s.lastCheckpoint !== undefined ? `, last checkpoint ${s.lastCheckpoint}` : ""}`;
  return `${s.job}: not running; ${what} (${counts})`;
}
