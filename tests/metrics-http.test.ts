// `weir run --http ADDR` serves Prometheus metrics: scraped over real HTTP from a real `weir run` on a
// real nats-server while records flow, through a restart after a user function threw once.
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { connect, createServer } from "node:net";
import { withServer } from "./helpers/nats-server.ts";
import { eventually, runWeir, startWeir, freePort, within } from "./helpers/cli.ts";

const test = suite("metrics over HTTP");
const nats = withServer(test);
const JOB = "tests/fixtures/jobs/fail-once.ts";

interface Scrape { readonly text: string; readonly types: Map<string, string>; readonly samples: Array<{ name: string; labels: Record<string, string>; value: number }> }

async function scrape(port: number): Promise<Scrape> {
  const res = await fetch(`http://127.0.0.1:${port}/metrics`);
  assert.is(res.status, 200);
  assert.match(res.headers.get("content-type") ?? "", /^text\/plain/);
  const text = await res.text();
  const types = new Map<string, string>();
  const samples: Scrape["samples"] = [];
  for (const line of text.split("\n")) {
    const t = /^# TYPE (\S+) (\S+)$/.exec(line);
    if (t) { types.set(t[1]!, t[2]!); continue; }
    const m = /^([a-zA-Z_:][\w:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!m) continue;
    const labels: Record<string, string> = {};
    for (const l of (m[2] ?? "").matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)) labels[l[1]!] = l[2]!;
    samples.push({ name: m[1]!, labels, value: Number(m[3]) });
  }
  return { text, types, samples };
}

/** The status line of the answer to a raw request (as a port scanner sends it), or what ended the connection. */
async function rawRequest(port: number, text: string): Promise<string> {
  return await new Promise<string>((resolve) => {
    const socket = connect(port, "127.0.0.1", () => socket.write(text));
    let got = "";
    const timer = setTimeout(() => { socket.destroy(); resolve(`no answer within 5 s: ${got}`); }, 5000);
    socket.on("data", (d) => { got += d; });
    socket.on("error", (e) => { got += ` (${e.message})`; });
    socket.on("close", () => { clearTimeout(timer); resolve(got.split("\r\n")[0] || "closed without an answer"); });
  });
}

const sum = (s: Scrape, name: string, where: Record<string, string> = {}) =>
  s.samples.filter((x) => x.name === name && Object.entries(where).every(([k, v]) => x.labels[k] === v)).reduce((n, x) => n + x.value, 0);

test("names, types and labels; counters rise while input flows; checkpoints and a restart are counted", async () => {
  const port = await freePort();
  const run = startWeir(["run", JOB, "--nats", nats.url, "--http", `127.0.0.1:${port}`], { env: { JOB_NAME: "metered" } });
  try {
    await run.waitForStderr("serving metrics on", 60_000);
    const first = await eventually("records counted at /metrics", 60_000, async () => {
      const s = await scrape(port);
      return sum(s, "weir_operator_records_in_total") > 0 && sum(s, "weir_checkpoints_total", { status: "completed" }) > 0 ? s : undefined;
    });
    for (const [name, type] of [
      ["weir_operator_records_in_total", "counter"], ["weir_operator_records_out_total", "counter"], ["weir_checkpoints_total", "counter"],
      ["weir_checkpoints_skipped_total", "counter"], ["weir_job_restarts_total", "counter"], ["weir_subtask_busy_seconds_total", "counter"], ["weir_dead_letters_total", "counter"],
      ["weir_state_cache_entries", "gauge"], ["weir_worker_leader", "gauge"], ["weir_last_checkpoint_age_seconds", "gauge"],
      ["weir_checkpoint_duration_seconds", "histogram"], ["weir_process_cpu_user_seconds_total", "counter"], ["weir_nodejs_heap_size_used_bytes", "gauge"],
    ] as const) assert.is(first.types.get(name), type, `# TYPE ${name} ${type}`);
    assert.equal([...new Set(first.samples.map((x) => x.name).filter((n) => !n.startsWith("weir_")))], [], "every name is prefixed weir_ (API.md)");
    assert.equal([...first.types].filter(([n, type]) => n.endsWith("_total") && type !== "counter"), [], "only counters end in _total");
    const records = first.samples.filter((x) => x.name === "weir_operator_records_in_total");
    assert.ok(records.length >= 4, "one series per subtask (2 operators × parallelism 2)");
    for (const r of records) {
      assert.is(r.labels.job_name, "metered");
      assert.ok(r.labels.operator === "gen" || r.labels.operator === "check", `operator label is the uid: ${JSON.stringify(r.labels)}`);
      assert.match(r.labels.subtask ?? "", /^[01]$/);
      assert.ok(r.labels.worker, "worker label");
    }
    assert.is(sum(first, "weir_worker_leader"), 1, "the only worker leads");
    const ready = await fetch(`http://127.0.0.1:${port}/readyz`);
    assert.equal([ready.status, await ready.text()], [200, "ready: job metered is running\n"]);
    assert.ok(!/^weir_\w+\{[^}]*\b(key|checkpoint_id)=/m.test(first.text), "no label per key or checkpoint id");

    const later = await eventually("counters rising between scrapes", 60_000, async () => {
      const s = await scrape(port);
      return sum(s, "weir_operator_records_in_total") > sum(first, "weir_operator_records_in_total")
        && sum(s, "weir_operator_records_out_total") > sum(first, "weir_operator_records_out_total")
        && sum(s, "weir_checkpoints_total", { status: "completed" }) > sum(first, "weir_checkpoints_total", { status: "completed" }) ? s : undefined;
    });
    assert.ok(sum(later, "weir_checkpoint_duration_seconds_count") >= sum(later, "weir_checkpoints_total", { status: "completed" }) - 1, "the histogram counts the completed checkpoints");

    // The user function throws once (at record 1500 of a subtask's generator): one restart.
    await eventually("the restart counted", 60_000, async () => (sum(await scrape(port), "weir_job_restarts_total") >= 1 ? true : undefined));
    const after = await scrape(port);
    await eventually("records counted again after the restart", 60_000, async () => {
      const s = await scrape(port);
      return sum(s, "weir_operator_records_in_total") > sum(after, "weir_operator_records_in_total") ? true : undefined;
    });
  } finally {
    run.child.kill("SIGTERM");
    const exit = await within(run.exited, 30_000);
    if (!exit) run.child.kill("SIGKILL");
  }
});

test("no scrape before a restart: the counters after it still hold what the replaced subtasks had counted", async () => {
  const port = await freePort();
  const run = startWeir(["run", JOB, "--nats", nats.url, "--http", `127.0.0.1:${port}`], { env: { JOB_NAME: "unscraped" } });
  try {
    await run.waitForStderr("restarting (restart 1", 60_000);
    // The job's own count over the whole run (its sources' records before the restart included), then /metrics.
    const snapshot = await (await fetch(`http://127.0.0.1:${port}/api/snapshot`)).json() as { views: Array<{ status: { recordsIn: number } }> };
    const wholeRun = snapshot.views[0]!.status.recordsIn;
    assert.ok(wholeRun >= 1500, `records read before the failure at record 1500: ${wholeRun}`);
    const sources = sum(await scrape(port), "weir_operator_records_in_total", { operator: "gen" });
    assert.ok(sources >= wholeRun, `the sources' counters (${sources}) include what was read before the restart (the job counts ${wholeRun})`);
  } finally {
    run.child.kill("SIGTERM");
    const exit = await within(run.exited, 30_000);
    if (!exit) run.child.kill("SIGKILL");
  }
});

test("while the job is still starting (its input stream missing, restarting): the dashboard and /metrics are served; a malformed request is answered 400, the job goes on", async () => {
  const port = await freePort();
  const run = startWeir(["run", "tests/fixtures/jobs/failing-sink.ts", "--nats", nats.url, "--http", `127.0.0.1:${port}`, "--quiet"], { env: { SINKJOB_NAME: "notyet", SINKJOB_RESTART_DELAY_MS: "12000" } });
  try {
    await run.waitForStderr("restarting (restart 1", 60_000);
    const page = await fetch(`http://127.0.0.1:${port}/`);
    assert.is(page.status, 200, "the dashboard page, not 'not found'");
    assert.match(await page.text(), /<html/i);
    assert.is((await fetch(`http://127.0.0.1:${port}/api/snapshot`)).status, 200);
    const metrics = await fetch(`http://127.0.0.1:${port}/metrics`);
    assert.is(metrics.status, 200);
    assert.match(await metrics.text(), /^weir_job_state\{[^}]*state="(deploying|failing|restarting)"[^}]*\} 1$/m, "the job's state while it starts");
    assert.match(run.stderr(), `serving metrics on http://127.0.0.1:${port}/metrics`, "where, said before the job runs");
    // Probes: alive, not ready (a readiness probe keeps traffic off a job that restarts), saying why.
    assert.is((await fetch(`http://127.0.0.1:${port}/healthz`)).status, 200);
    const ready = await fetch(`http://127.0.0.1:${port}/readyz`);
    assert.is(ready.status, 503);
    assert.match(await ready.text(), /^not ready: job notyet is (deploying|failing|restarting)/);
    // A request target no URL parser takes (a scanner's probe) ended the whole job as a crash ("Invalid URL").
    assert.match(await rawRequest(port, "GET //[ HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"), /^HTTP\/1\.1 400 /);
    assert.is((await fetch(`http://127.0.0.1:${port}/metrics`)).status, 200, "still serving");
    assert.is(run.child.exitCode, null, `the job still runs: ${run.stderr().slice(-400)}`);
    assert.not.match(run.stderr(), /Invalid URL/);
  } finally {
    if (run.child.exitCode === null) run.child.kill("SIGKILL");
    await run.exited;
  }
});

test("a bad --http address and a port in use are one-line errors naming --http", async () => {
  const bad = await runWeir(["run", JOB, "--nats", nats.url, "--http", "localhost:http"]);
  assert.is.not(bad.code, 0);
  // commander's usage error: one line naming the flag (then its usual pointer to --help)
  assert.match(bad.stderr.split("\n")[0]!, /^weir: option '--http <addr>' argument 'localhost:http' is invalid\. --http expects host:port/, bad.stderr);

  // worker n listens on port + n - 1: worker 2 was started and failed on a port the user never typed (65536).
  const beyond = await runWeir(["run", JOB, "--nats", nats.url, "--workers", "2", "--http", "127.0.0.1:65535"], { env: { JOB_NAME: "beyondports" } });
  assert.is.not(beyond.code, 0);
  assert.equal(beyond.stderr.trimEnd().split("\n"), ["weir: --http 127.0.0.1:65535 with --workers 2: worker 2 would listen on port 65536 (ports end at 65535); give a lower port, or 0 for free ones"], beyond.stderr);

  // An IPv6 address is named as given, in brackets (it printed "::2:0", which reads as another address).
  const v6 = await runWeir(["run", JOB, "--nats", nats.url, "--http", "[::2]:0"], { env: { JOB_NAME: "nov6" } });
  assert.is.not(v6.code, 0);
  assert.is(v6.stderr.trimEnd().split("\n").at(-1), "weir: --http [::2]:0: no such local address", v6.stderr);

  const holder = createServer();
  await new Promise<void>((r) => holder.listen(0, "127.0.0.1", r));
  try {
    const port = (holder.address() as { port: number }).port;
    const taken = await runWeir(["run", JOB, "--nats", nats.url, "--http", `127.0.0.1:${port}`], { env: { JOB_NAME: "porttaken" } });
    assert.is.not(taken.code, 0);
    const last = taken.stderr.trimEnd().split("\n").at(-1)!;
    assert.match(last, new RegExp(`^weir: --http 127\\.0\\.0\\.1:${port}: the port is in use$`), taken.stderr);
  } finally {
    await new Promise((r) => holder.close(r));
  }
});

test.run();
