// `weir dashboard` reads each job's status from its leader, which mirrors every worker's subtasks: its
// views (and so its /metrics) put each subtask under the worker it runs on, and the job-wide figures under
// the leader alone.
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { wholeJobViews, workerViews } from "../runtime/cli/dashboard/nats-source.ts";
import type { JobView } from "../runtime/cli/http/job-view.ts";
import { MetricsRegistry } from "../runtime/cli/metrics/registry.ts";
import type { JobStatus } from "../actors/job/job-status.ts";
import { Socket } from "node:net";
import { HttpServer } from "../runtime/cli/http/server.ts";
import { addDashboardRoutes } from "../runtime/cli/dashboard/routes.ts";

const test = suite("dashboard views");

const subtask = (id: string, worker: string | undefined, recordsIn: number) => ({
  id, vertex: 0, name: id, index: Number(id.split("#")[1]), state: "running", recordsIn, recordsOut: 0, watermark: null,
  backpressuredMs: 0, queuedFrames: 0, pendingFrames: 0, deadLetters: 0, isBacklog: false, operators: {}, ...(worker ? { worker } : {}),
});

const status = {
  job: "split", state: "running", leader: "w-lead", worker: "w-lead", restarts: 0,
  workers: [{ id: "w-lead", leader: true, subtasks: ["gen#0"] }, { id: "w-other", leader: false, subtasks: ["gen#1"] }],
  subtasks: [subtask("gen#0", undefined, 10), subtask("gen#1", "w-other", 32)],
} as unknown as JobStatus;

test("each subtask under the worker it runs on; one view leads", () => {
  const views = workerViews(status);
  assert.equal(views.map((v) => [v.worker, v.leader, v.localSubtasks.map((s) => s.id)]), [["w-lead", true, ["gen#0"]], ["w-other", false, ["gen#1"]]]);
});

test("/metrics from those views: records of gen#1 are labelled with the worker running it", async () => {
  const registry = new MetricsRegistry();
  registry.attach({ views: async () => workerViews(status) }, {});
  const text = await registry.render();
  assert.match(text, /weir_operator_records_in_total\{job_name="split",worker="w-other",operator="gen",subtask="1"\} 32/);
  assert.match(text, /weir_operator_records_in_total\{job_name="split",worker="w-lead",operator="gen",subtask="0"\} 10/);
});

test("/metrics (weir dashboard): a job started again on a new worker counts on from what the last one counted, even when its first figure is already higher", async () => {
  let views = workerViews(status);
  const registry = new MetricsRegistry();
  registry.attach({ views: async () => views }, {});
  assert.match(await registry.render(), /weir_operator_records_in_total\{job_name="split",worker="w-lead",operator="gen",subtask="0"\} 10\n/);
  // The job stopped and started again in a new process: gen#0 counts from 0 there and has read 25 by the next scrape.
  views = workerViews({ ...status, leader: "w-new", worker: "w-new", subtasks: [subtask("gen#0", undefined, 25), subtask("gen#1", "w-other", 32)] } as unknown as JobStatus);
  assert.match(await registry.render(), /weir_operator_records_in_total\{job_name="split",worker="w-new",operator="gen",subtask="0"\} 35\n/);
  assert.match(await registry.render(), /weir_operator_records_in_total\{job_name="split",worker="w-other",operator="gen",subtask="1"\} 32\n/);
});

test("a follower's page shows the whole job as its leader reports it; its own part while the leader does not answer; a leader's page its own", async () => {
  const view = (worker: string, leader: boolean): JobView => ({ job: "split", worker, leader, at: "", status, localSubtasks: [] });
  let asked = 0;
  const leaderStatus = (answer: JobStatus | undefined | Error) => async () => { asked++; if (answer instanceof Error) throw answer; return answer; };
  const follower = { views: async () => [view("w-other", false)] };
  const whole = await wholeJobViews(follower, leaderStatus(status)).views();
  assert.equal(whole.map((v) => [v.worker, v.leader, v.localSubtasks.map((x) => x.id)]), [["w-lead", true, ["gen#0"]], ["w-other", false, ["gen#1"]]]);
  assert.equal((await wholeJobViews(follower, leaderStatus(new Error("timeout"))).views()).map((v) => v.worker), ["w-other"]);
  assert.equal((await wholeJobViews(follower, leaderStatus(undefined)).views()).map((v) => v.worker), ["w-other"]);
  asked = 0;
  const lead = await wholeJobViews({ views: async () => [view("w-lead", true)] }, leaderStatus(status)).views();
  assert.equal(lead.map((v) => v.worker), ["w-lead"]);
  assert.is(asked, 0, "a leader does not ask itself over NATS");
});

test("/events: a page that stops reading (a frozen tab, a stuck proxy) is not sent more than a bounded backlog; it gets the latest once it reads", async () => {
  // 500 KB snapshots every 10 ms: a client that never read had every one of them buffered in the serving
  // process (a `weir run` grew by ~25 MB a second, without end).
  let taken = 0;
  const big = "x".repeat(500_000);
  const source = { views: async () => { taken++; return [{ job: "big", worker: "w", leader: false, at: "", status: { job: "big", note: big } as unknown as JobStatus, localSubtasks: [] }]; } };
  const http = new HttpServer();
  const stream = addDashboardRoutes(http, { source, intervalMs: 10 });
  const stuck = new Socket();
  try {
    const { port } = await http.listen({ host: "127.0.0.1", port: 0 });
    stuck.connect(port, "127.0.0.1", () => stuck.write("GET /events HTTP/1.1\r\nHost: x\r\n\r\n"));
    stuck.pause();
    const deadline = Date.now() + 60_000;
    while (taken < 200 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    assert.ok(taken >= 200, `200 snapshots taken: ${taken}`);
    let received = 0;
    let last = "";
    // The response's end (its last chunk; the connection itself stays open) or the connection's.
    let ended: () => void = () => {};
    const end = new Promise<void>((r) => { ended = r; stuck.on("close", r); });
    stuck.on("data", (d: Buffer) => { received += d.length; last = (last + d.toString("latin1")).slice(-200); if (last.endsWith("\r\n0\r\n\r\n")) ended(); });
    await stream.close(); // a last snapshot to every page, then the end
    stuck.resume();
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([end, new Promise((r) => { timer = setTimeout(r, 30_000); })]);
    clearTimeout(timer);
    assert.ok(received < 30_000_000, `what the page got after 200 snapshots of 500 KB is bounded: ${(received / 1e6).toFixed(1)} MB`);
    assert.match(last, /\}\n\n\r\n0\r\n\r\n$/, `the last snapshot whole, then the end: ${JSON.stringify(last.slice(-40))}`);
  } finally {
    stuck.destroy();
    await stream.close();
    await http.close();
  }
});

test.run();
