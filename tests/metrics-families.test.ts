// The metric families as pure functions of job views: what a worker's /metrics shows for a given status.
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { FAMILIES } from "../runtime/cli/metrics/families.ts";
import type { JobView } from "../runtime/cli/http/job-view.ts";
import type { JobStatus } from "../actors/job/job-status.ts";

const test = suite("metric families");

const view = (worker: string, leader: boolean, status: Partial<JobStatus>): JobView => ({
  job: "fam", worker, leader, at: new Date(0).toISOString(), localSubtasks: [],
  status: { job: "fam", state: "running", subtasks: [], restarts: 0, failures: [], uptimeMs: 1, ...status } as unknown as JobStatus,
});
const samples = (name: string, views: readonly JobView[]) => FAMILIES.find((f) => f.name === name)!.samples(views);

test("a follower that lost NATS shows 0 on weir_worker_nats_connected; job-wide gauges stay the leader's", () => {
  const views = [view("w1", true, {}), view("w2", false, { natsDisconnectedSince: new Date(0).toISOString() })];
  assert.equal(samples("weir_worker_nats_connected", views).map((s) => [s.labels.worker, s.value]), [["w1", 1], ["w2", 0]]);
  assert.equal(samples("weir_job_nats_connected", views).map((s) => s.value), [1], "the job's own gauge: the leader's view only");
});

test.run();
