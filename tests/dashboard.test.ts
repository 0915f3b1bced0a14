// The web dashboard in a real browser: `weir run --http` on a real nats-server with a job whose user
// function throws once, and `weir dashboard` listing a running job; what a person sees on the page.
import { suite } from "uvu";
import * as assert from "uvu/assert";
import type { Browser, Locator, Page } from "playwright-core";
import { withServer } from "./helpers/nats-server.ts";
import { eventually, startWeir, type WeirProcess, freePort, within } from "./helpers/cli.ts";
import { launchChromium, parseCount } from "./helpers/browser.ts";
import { HttpServer } from "../runtime/cli/http/server.ts";
import { addDashboardRoutes } from "../runtime/cli/dashboard/routes.ts";
import type { JobViewSource } from "../runtime/cli/http/job-view.ts";
import { natsJobViews } from "../runtime/cli/dashboard/nats-source.ts";
import { launchNatsServer } from "../runtime/internal.ts";
import { connect } from "@nats-io/transport-node";

const test = suite("dashboard");
const nats = withServer(test);
const JOB = "tests/fixtures/jobs/fail-once.ts";
const WAIT = 60_000;

async function stop(p: WeirProcess): Promise<void> {
  p.child.kill("SIGTERM");
  const exit = await within(p.exited, 30_000);
  if (!exit) p.child.kill("SIGKILL");
}

/**
 * A vertex's name as the graph shows it (its label), not its tooltip: with Debian's Chromium 150 (2026-12-04)
 * `getByText` also matched the SVG `<title>` of the tooltip, and found two elements.
 */
function vertexLabel(graph: Locator, name: string): Locator {
  return graph.locator("text.title").filter({ hasText: new RegExp(`^${name.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}$`) });
}

/** Runs `f` with a page of a fresh browser, or says why there is no browser. */
async function withPage(f: (page: Page) => Promise<void>): Promise<void> {
  const launched = await launchChromium();
  if ("skip" in launched) {
    console.log(`  SKIPPED browser test: ${launched.skip}`);
    return;
  }
  const browser: Browser = launched.browser;
  try {
    const page = await browser.newPage();
    page.setDefaultTimeout(WAIT);
    const errors: string[] = [];
    page.on("pageerror", (e) => errors.push(e.message));
    await f(page);
    assert.equal(errors, [], "no script errors on the page");
  } finally {
    await browser.close();
  }
}

test("weir run --http: graph operators, rising records, a checkpoint row, subtask states, the failure message", async () => {
  const port = await freePort();
  const run = startWeir(["run", JOB, "--nats", nats.url, "--http", `127.0.0.1:${port}`], { env: { JOB_NAME: "dashed", FAIL_AT: "4000" } });
  try {
    await run.waitForStderr(`dashboard on http://127.0.0.1:${port}/`, WAIT);
    await withPage(async (page) => {
      await page.goto(`http://127.0.0.1:${port}/`);
      const graph = page.locator("#graph");
      await vertexLabel(graph, "Source: generator").waitFor();
      await vertexLabel(graph, "KeyedProcess -> Sink: nats").waitFor();
      assert.match(await graph.textContent() ?? "", /parallelism 2/);

      const recordsIn = page.locator("#records-in");
      const first = await eventually("a record count on the page", WAIT, async () => {
        const n = parseCount(await recordsIn.textContent());
        return n > 0 ? n : undefined;
      });
      await eventually("the record count rising", WAIT, async () => (parseCount(await recordsIn.textContent()) > first ? true : undefined));

      await page.locator("#checkpoints tr[data-checkpoint]").first().waitFor();
      assert.match(await page.locator("#checkpoints tr[data-checkpoint]").first().textContent() ?? "", /checkpoint/);
      await page.locator("#subtasks").getByText("running.streaming").first().waitFor();

      // The user function throws at record 4000 of a subtask: its message, and the restart, on the page.
      await page.locator("#exceptions").getByText(/boom once/).first().waitFor();
      await eventually("the restart counted on the page", WAIT, async () => (Number(await page.locator("#restarts").textContent()) >= 1 ? true : undefined));
    });
  } finally {
    await stop(run);
  }
});

test("weir dashboard lists a running job from NATS and shows its graph; /metrics too", async () => {
  const job = startWeir(["run", JOB, "--nats", nats.url, "--quiet"], { env: { JOB_NAME: "listed", FAIL_AT: "-1" } });
  const port = await freePort();
  const dash = startWeir(["dashboard", "--nats", nats.url, "--http", `127.0.0.1:${port}`]);
  try {
    await dash.waitForStderr(`dashboard: http://127.0.0.1:${port}/`, WAIT);
    await withPage(async (page) => {
      await page.goto(`http://127.0.0.1:${port}/`);
      await page.locator('#jobs tr[data-job="listed"]').getByText("running").waitFor();
      await vertexLabel(page.locator("#graph"), "Source: generator").waitFor();
      await page.locator("#subtasks").getByText("running.streaming").first().waitFor();
    });
    const metrics = await eventually("the job's records at /metrics", WAIT, async () => {
      const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
      return /^weir_operator_records_in_total\{[^}]*job_name="listed"[^}]*\} [1-9]/m.test(text) ? text : undefined;
    });
    assert.match(metrics, /weir_worker_leader\{[^}]*job_name="listed"/);
  } finally {
    await stop(dash);
    await stop(job);
  }
});

test("/events: a snapshot at once to each page, snapshots only while a page is open; read-only", async () => {
  let taken = 0;
  const source: JobViewSource = { views: async () => { taken++; return []; } };
  const http = new HttpServer();
  const stream = addDashboardRoutes(http, { source, intervalMs: 50 });
  try {
    const { port } = await http.listen({ host: "127.0.0.1", port: 0 });
    await new Promise((r) => setTimeout(r, 200));
    assert.is(taken, 0, "no snapshot while no page is open");
    const page = new AbortController();
    const res = await fetch(`http://127.0.0.1:${port}/events`, { signal: page.signal });
    assert.match(res.headers.get("content-type") ?? "", /^text\/event-stream/);
    const reader = res.body!.getReader();
    let text = "";
    while (!/\ndata: .*\n\n/s.test(text) && !text.startsWith("data:")) text += new TextDecoder().decode((await reader.read()).value);
    assert.match(text, /data: \{"at":"[^"]+","views":\[\],"checkpoints":\{\}\}/);
    await eventually("snapshots each interval while open", 10_000, () => (taken >= 3 ? true : undefined));
    assert.ok(stream.running);
    page.abort();
    await eventually("the timer stopped once the page closed", 10_000, () => (!stream.running && stream.connected === 0 ? true : undefined));
    const after = taken;
    await new Promise((r) => setTimeout(r, 300));
    assert.is(taken, after, "no snapshot after the last page closed");
    const post = await fetch(`http://127.0.0.1:${port}/events`, { method: "POST" });
    assert.is(post.status, 405, "no POST route");
    const page2 = await fetch(`http://127.0.0.1:${port}/`);
    assert.match(await page2.text(), /<title>weir dashboard<\/title>/);
    assert.is((await fetch(`http://127.0.0.1:${port}/vendor/dagre.js`)).status, 200, "dagre served from node_modules");
    assert.is((await fetch(`http://127.0.0.1:${port}/vendor/uplot.js`)).status, 200, "uPlot served from node_modules");
  } finally {
    await stream.close();
    await http.close();
  }
});

test("weir run --http: the page ends on the job's final state (it stayed on 'running'), figures greyed once the server is gone", async () => {
  const port = await freePort();
  const started: { run?: WeirProcess } = {};
  try {
    await withPage(async (page) => {
      // The browser first, then the job (~6 s): on a loaded machine the browser's start once outlasted the
      // job, and the page never saw it running.
      const run = (started.run = startWeir(["run", JOB, "--nats", nats.url, "--http", `127.0.0.1:${port}`], { env: { JOB_NAME: "ending", FAIL_AT: "-1", COUNT: "12000" } }));
      await run.waitForStderr(`dashboard on http://127.0.0.1:${port}/`, WAIT);
      await page.goto(`http://127.0.0.1:${port}/`);
      await page.locator("#job-state").getByText("running").waitFor();
      await page.locator("#job-state").getByText("finished").waitFor();
      assert.is(parseCount(await page.locator("#records-in").textContent()), 12_000, "the final count");
      await page.locator("body.stale").waitFor({ state: "attached" });
    });
  } finally {
    if (started.run !== undefined) await stop(started.run);
  }
});

test("weir dashboard with the server gone says it does not answer, not 'no running jobs'", async () => {
  const server = await launchNatsServer();
  const nc = await connect({ servers: server.url });
  try {
    const views = natsJobViews(nc);
    assert.equal(await views.views(), [], "no job yet");
    await server.stop();
    const error = await views.views().then(() => "listed", (e: Error) => e.message);
    assert.match(error, /^the NATS server does not answer \(within \d+ ms\): the jobs are unknown$/);
  } finally {
    await nc.close().catch(() => {});
    await server.stop();
  }
});

test("a page opened for ?job=X shows X once it runs, though another job was shown first", async () => {
  const first = startWeir(["run", JOB, "--nats", nats.url, "--quiet"], { env: { JOB_NAME: "shown-first", FAIL_AT: "-1" } });
  const port = await freePort();
  const dash = startWeir(["dashboard", "--nats", nats.url, "--http", `127.0.0.1:${port}`]);
  let later: WeirProcess | undefined;
  try {
    await dash.waitForStderr(`dashboard: http://127.0.0.1:${port}/`, WAIT);
    await withPage(async (page) => {
      await page.goto(`http://127.0.0.1:${port}/?job=asked-for`);
      await page.locator('#jobs tr[data-job="shown-first"]').waitFor();
      await page.locator("#summary").getByText("shown-first").waitFor();
      later = startWeir(["run", JOB, "--nats", nats.url, "--quiet"], { env: { JOB_NAME: "asked-for", FAIL_AT: "-1" } });
      await page.locator("#summary").getByText("asked-for").waitFor();
      assert.match(await page.locator('#jobs tr.selected').textContent() ?? "", /asked-for/);
    });
  } finally {
    await stop(dash);
    await stop(first);
    if (later) await stop(later);
  }
});

test.run();
