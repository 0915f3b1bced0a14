// `npm run demo` / `weir demo`: runs the page-view pipeline on the embedded default server for ~30 s
// (or `--forever`), with a live progress line and a final summary read back from the output stream. The
// web dashboard and /metrics are served meanwhile (on a free loopback port unless --http says where).

import { jetstreamManager } from "@nats-io/jetstream";
import type { NatsConnection } from "@nats-io/transport-node";
import { resolveNatsConnection } from "../../runtime/nats/connect.ts";
import { describeServers } from "../../runtime/nats/server-urls.ts";
import { ProgressReporter, formatCount } from "../../runtime/cli/progress.ts";
import job, { type Stat } from "./pageviews.ts";
import { resetDemoStreams } from "./producer.ts";
import { runLoad, type LoadResult } from "./load.ts";
import { HttpServer, type HttpAddress } from "../../runtime/cli/http/server.ts";
import { localJobViews } from "../../runtime/cli/http/job-view.ts";
import { MetricsRegistry } from "../../runtime/cli/metrics/registry.ts";
import { addDashboardRoutes } from "../../runtime/cli/dashboard/routes.ts";
import { storedCheckpoints } from "../../runtime/cli/dashboard/history.ts";

export interface DemoFlags { readonly forever?: boolean; readonly duration?: number; readonly nats?: string; readonly context?: string; readonly creds?: string; readonly rate?: number; readonly http?: HttpAddress }

const CATCH_UP_S = 60;

export async function demoCommand(flags: DemoFlags): Promise<number> {
  const natsFlags = { ...(flags.nats !== undefined ? { nats: flags.nats } : {}), ...(flags.context !== undefined ? { context: flags.context } : {}), ...(flags.creds !== undefined ? { creds: flags.creds } : {}) };
  const settings = await resolveNatsConnection({ flags: natsFlags });
  const url = describeServers(settings);
  // A clean slate (streams recreated below): a checkpoint of an earlier run would resume offsets and counts
  // that belong to streams that are gone.
  const env = job.createEnvironment({ restore: "none" }, { natsFlags });
  const nc = await env.connection();
  const seconds = flags.duration ?? 30;
  const rate = flags.rate ?? 20_000;
  process.stderr.write(`weir demo: NATS ${url}; producing ~${formatCount(rate)} page views/s ${flags.forever ? "until Ctrl-C" : `for ${seconds}s`}\n`);

  // Start from a clean slate so the summary describes this run.
  await resetDemoStreams(nc);

  const client = await env.executeAsync();
  const http = new HttpServer();
  const metrics = new MetricsRegistry();
  const views = localJobViews({ status: () => client.status(), workerId: "demo" });
  metrics.attach(views, { job_name: client.jobName, worker: "demo" });
  const dashboard = addDashboardRoutes(http.addRoute("/metrics", metrics.route()), { source: views, seedCheckpoints: storedCheckpoints(async () => nc) });
  const at = await http.listen(flags.http ?? { host: "127.0.0.1", port: 0 });
  process.stderr.write(`dashboard: http://${at.host.includes(":") ? `[${at.host}]` : at.host}:${at.port}/\n`);
  const producing = new AbortController();
  const stopProducing = () => producing.abort();
  // `on`, not `once`: the progress line's log-update loads signal-exit, which re-raises a signal when it
  // sees no listener but its own, and a `once` wrapper is gone by the time it looks (a terminal's Ctrl-C
  // killed the demo with no summary). Removed below.
  process.on("SIGINT", stopProducing);
  process.on("SIGTERM", stopProducing);
  const consumed = () => { const s = client.status(); return s.recordsIn + s.deadLetters; };
  let progress: ProgressReporter | undefined;
  let load: LoadResult;
  try {
    load = await runLoad({
      settings, ratePerSec: rate, stop: producing.signal, consumed,
      ...(flags.forever ? {} : { durationMs: seconds * 1000 }), catchUpMs: CATCH_UP_S * 1000,
      onStarted: (producer) => {
        process.stderr.write(`producer: process ${producer.pid}, aiming at ${formatCount(rate)} page views/s\n`);
        progress = new ProgressReporter(() => client.status(), { extra: () => { const r = producer.report; return `produced ${formatCount(r.produced + r.malformed)}`; } });
        progress.start();
      },
    });
  } catch (e) {
    progress?.stop();
    await client.cancel().catch(() => {});
    dashboard.close();
    await http.close();
    await env.close();
    throw e;
  } finally {
    process.off("SIGINT", stopProducing);
    process.off("SIGTERM", stopProducing);
  }

  // Everything produced was taken in (or the catch-up deadline passed): stop the job gracefully.
  const result = await client.stop();
  progress?.stop();
  dashboard.close();
  await http.close();

  const stats = await readLatestStats(nc);
  const top = (kind: Stat["kind"]) => [...stats.values()].filter((s) => s.kind === kind).sort((a, b) => b.views - a.views).slice(0, 5);
  const pageStats = [...stats.values()].filter((x) => x.kind === "page");
  const counted = pageStats.reduce((n, x) => n + x.views, 0);
  const pages = pageStats.length;
  const secs = result.durationMs / 1000;
  const s = result.status;
  const p = load.producer;
  const lines = [
    "",
    `weir demo summary (${result.state} after ${secs.toFixed(1)}s)`,
    `  page views produced   ${load.published.toLocaleString("en-US")} in ${(p.elapsedMs / 1000).toFixed(1)}s (${p.malformed} malformed on purpose${p.failed ? `; ${p.failed} publishes failed: ${p.firstError}` : ""})`,
    `  producer rate         ${formatCount(load.sustainedPerSec)}/s sustained, ${formatCount(load.aimedPerSec)}/s aimed (process ${load.producerPid})`,
    `  weir kept up with     ${formatCount(load.keptUpPerSec)}/s while the producer ran (${load.consumedWhileProducing.toLocaleString("en-US")} taken in); ${caughtUp(load)}`,
    `  records read by weir  ${s.recordsIn.toLocaleString("en-US")}`,
    `  stat updates written  ${s.recordsOut.toLocaleString("en-US")} to stream PAGE_STATS`,
    `  dead letters          ${s.deadLetters} in stream weir_pageviews_dlq (npx weir dead-letters pageviews lists them)`,
    `  views counted         ${counted.toLocaleString("en-US")} over ${pages} pages (the final per-page counts added up; equal to the records read)`,
    `  top pages             ${top("page").map((x) => `${x.key} ${x.views}`).join(", ")}`,
    `  top users             ${top("user").map((x) => `${x.key} ${x.views}`).join(", ")}`,
    `  subtasks              ${s.subtasks.map((x) => `${x.id}=${x.state}`).join(" ")}`,
  ];
  process.stdout.write(`${lines.join("\n")}\n`);
  await env.close();
  return 0;
}

function caughtUp(load: LoadResult): string {
  const behind = `${load.behindAtStop.toLocaleString("en-US")} behind when it stopped`;
  if (load.caughtUpAfterMs === undefined) return `${behind}, still ${load.behindAtEnd.toLocaleString("en-US")} behind ${CATCH_UP_S} s later: did not catch up`;
  return load.behindAtStop === 0 ? "caught up: nothing left behind" : `${behind}, caught up ${(load.caughtUpAfterMs / 1000).toFixed(1)}s later`;
}

/**
 * The last stat per subject of PAGE_STATS (the stream keeps every update; the final counts are the last
 * ones): one message-get per subject, not a read of every update.
 */
async function readLatestStats(nc: NatsConnection): Promise<Map<string, Stat>> {
  const jsm = await jetstreamManager(nc);
  const info = await jsm.streams.info("PAGE_STATS", { subjects_filter: ">" });
  const subjects = Object.keys(info.state.subjects ?? {});
  const latest = new Map<string, Stat>();
  for (let i = 0; i < subjects.length; i += 64) {
    await Promise.all(subjects.slice(i, i + 64).map(async (subject) => {
      const m = await jsm.streams.getMessage("PAGE_STATS", { last_by_subj: subject });
      if (m) latest.set(subject, m.json<Stat>());
    }));
  }
  return latest;
}
