// `npm run bench dashboard`: first paint of the web dashboard for a job of 20 subtasks (a generator at
// parallelism 10, keyed into a process and sink at parallelism 10): from navigation to the job graph
// drawn (the page's performance mark), in a fresh Chromium context each time (nothing cached); the
// median of the runs. The dashboard's cost to throughput is measured with /metrics in metrics.bench.ts.

import { Sinks, Sources, StreamEnvironment } from "../mod.ts";
import { HttpServer } from "../runtime/cli/http/server.ts";
import { localJobViews } from "../runtime/cli/http/job-view.ts";
import { addDashboardRoutes } from "../runtime/cli/dashboard/routes.ts";
import { launchChromium } from "../tests/helpers/browser.ts";
import type { BenchContext, Benchmark, BenchRow } from "./harness.ts";

const RUNS = 7;
const PARALLELISM = 10;

async function firstPaints(ctx: BenchContext, url: string, subtasks: () => number): Promise<number[]> {
  const launched = await launchChromium();
  if ("skip" in launched) {
    ctx.log(`skipped: ${launched.skip}`);
    return [];
  }
  const { browser } = launched;
  try {
    const times: number[] = [];
    for (let i = 0; i < RUNS; i++) {
      const context = await browser.newContext();
      try {
        const page = await context.newPage();
        await page.goto(url);
        await page.waitForSelector("#graph svg .node", { timeout: 30_000 });
        const ms = await page.evaluate(() => performance.getEntriesByName("weir:graph-drawn")[0]?.startTime ?? Number.NaN);
        const nodes = await page.locator("#graph svg .node").count();
        ctx.log(`run ${i + 1}: graph drawn ${ms.toFixed(0)} ms after navigation (${nodes} operators, ${subtasks()} subtasks)`);
        times.push(ms);
      } finally {
        await context.close();
      }
    }
    return times;
  } finally {
    await browser.close();
  }
}

const bench: Benchmark = {
  name: "dashboard",
  description: `web dashboard first paint (navigation to graph drawn), job of ${2 * PARALLELISM} subtasks, median of ${RUNS}`,
  async run(ctx): Promise<BenchRow[]> {
    const env = StreamEnvironment.create({ name: "bench-dashboard", nats: ctx.url, parallelism: PARALLELISM, stateBackend: "heap", restore: "none", checkpointIntervalMs: 1000 });
    env.fromSource(Sources.generator({ ratePerSec: 2000, make: (i) => ({ k: `k${i % 100}`, i }) }), { uid: "gen" })
      .keyBy((e) => e.k)
      .process<{ k: string; i: number }>({ processElement(e, c) { c.collect(e); } }, { uid: "pass" })
      .sinkTo(Sinks.nats({ subject: "bench.dashboard.out" }), { uid: "out" });
    const client = await env.executeAsync();
    const http = new HttpServer();
    const stream = addDashboardRoutes(http, { source: localJobViews({ status: () => client.status(), workerId: "bench" }) });
    try {
      const at = await http.listen({ host: "127.0.0.1", port: 0 });
      const times = (await firstPaints(ctx, `http://127.0.0.1:${at.port}/`, () => client.status().subtasks.length)).sort((a, b) => a - b);
      if (times.length === 0) return [];
      return [{ figure: `first paint, ${client.status().subtasks.length} subtasks (median of ${times.length})`, weir: times[Math.floor(times.length / 2)]!, unit: "ms", goal: "< 1000 ms", note: "lower is better" }];
    } finally {
      stream.close();
      await http.close();
      await client.cancel();
      await env.close();
    }
  },
};

export default bench;
