// `/events`: one server-sent-events stream per open page. While at least one page is open, one
// snapshot of the job views is taken each interval and written to every page; with none open there is
// no timer and no snapshot. Nothing here runs per record.

import type { IncomingMessage, ServerResponse } from "node:http";
import type { JobView, JobViewSource } from "../http/job-view.ts";
import type { StreamHandler } from "../http/server.ts";
import type { CheckpointHistory } from "./history.ts";
import type { CheckpointSummary } from "../../checkpoint/metadata.ts";
import { messageOf } from "../../core/errors.ts";

export const SNAPSHOT_INTERVAL_MS = 1000;

/**
 * A page with this much not yet taken by its connection (it stopped reading: a frozen tab, a stuck proxy)
 * is skipped until it catches up, then gets the latest snapshot: the serving process keeps no more.
 */
export const MAX_UNSENT_BYTES = 1 << 20;

/** Writes `data` unless the page has fallen behind (MAX_UNSENT_BYTES). */
function send(page: ServerResponse, data: string): void {
  if (page.writableLength < MAX_UNSENT_BYTES) page.write(data);
}

/** What each event carries (the page's only input). */
export interface DashboardSnapshot {
  readonly at: string;
  readonly views: readonly JobView[];
  /** Per job, newest first. */
  readonly checkpoints: Readonly<Record<string, readonly CheckpointSummary[]>>;
  /** Why no views could be read (a NATS request failed), if so. */
  readonly error?: string;
}

export class SnapshotStream {
  private readonly clients = new Set<ServerResponse>();
  private timer: NodeJS.Timeout | undefined;
  private taking: Promise<string> | undefined;

  constructor(private readonly source: JobViewSource, private readonly history: CheckpointHistory, private readonly intervalMs = SNAPSHOT_INTERVAL_MS) {}

  get connected(): number { return this.clients.size; }

  /** Whether the snapshot timer runs (only while a page is open). */
  get running(): boolean { return this.timer !== undefined; }

  handler(): StreamHandler {
    return (req: IncomingMessage, res: ServerResponse) => {
      res.writeHead(200, { "content-type": "text/event-stream; charset=utf-8", "cache-control": "no-store", connection: "keep-alive" });
      res.write("retry: 2000\n\n");
      this.clients.add(res);
      req.socket.setNoDelay(true);
      // An open page must not keep a finished `weir run` alive.
      req.socket.unref();
      const gone = () => {
        this.clients.delete(res);
        if (this.clients.size === 0) this.stop();
      };
      req.once("close", gone);
      res.once("error", gone);
      // The first snapshot at once: the page draws without waiting for the next tick.
      void this.snapshot().then((data) => { if (this.clients.has(res)) send(res, data); });
      if (!this.timer) {
        this.timer = setInterval(() => { void this.broadcast(); }, this.intervalMs);
        this.timer.unref();
      }
    };
  }

  /** One snapshot as JSON (also served at /api/snapshot for scripts). */
  async json(): Promise<DashboardSnapshot> {
    let views: readonly JobView[] = [];
    let error: string | undefined;
    try {
      views = await this.source.views();
      await this.history.observe(views);
    } catch (e) {
      error = messageOf(e);
    }
    const checkpoints = Object.fromEntries(views.filter((v) => v.leader).map((v) => [v.job, this.history.of(v.job)]));
    return { at: new Date().toISOString(), views, checkpoints, ...(error !== undefined ? { error } : {}) };
  }

  /**
   * Ends every page's stream after a last snapshot (the job's final state: finished, failed, stopped), so
   * that an open page does not stay on "running"; bounded to a second when the source does not answer.
   */
  async close(): Promise<void> {
    this.stop();
    if (this.clients.size > 0) {
      let timer: NodeJS.Timeout | undefined;
      const last = await Promise.race([this.snapshot().catch(() => undefined), new Promise<undefined>((r) => { timer = setTimeout(() => r(undefined), 1000); })]);
      clearTimeout(timer);
      // The final state to every page, behind or not: each stream ends right after it.
      if (last !== undefined) for (const c of this.clients) c.write(last);
    }
    for (const c of this.clients) c.end();
    this.clients.clear();
  }

  private stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
  }

  /** Concurrent requests (a tick and a page that just opened) share one snapshot. */
  private snapshot(): Promise<string> {
    this.taking ??= this.json().then((s) => `data: ${JSON.stringify(s)}\n\n`).finally(() => { this.taking = undefined; });
    return this.taking;
  }

  private async broadcast(): Promise<void> {
    if (this.clients.size === 0) return;
    const data = await this.snapshot();
    for (const c of this.clients) send(c, data);
  }
}
