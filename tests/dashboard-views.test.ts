// `weir dashboard` reads each job's status from its leader, which mirrors every worker's subtasks: its
// views (and so its /metrics) put each subtask under the worker it runs on, and the job-wide figures under
// the leader alone.
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { wholeJobViews, workerViews } from "../runtime/cli/dashboard/nats-source.ts";
import type { JobView } from "../runtime/cli/http/job-view.ts";
import { MetricsRegistry } from "../runtime/cli/metrics/registry.ts";
import type { JobStatus } from "../actors/job/job-status.ts";

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

test.run();
