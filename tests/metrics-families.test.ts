// The metric families as pure functions of job views: what a worker's /metrics shows for a given status.
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { FAMILIES } from "../runtime/cli/metrics/families.ts";
import { MetricsRegistry } from "../runtime/cli/metrics/registry.ts";
import { DurationHistogram } from "../runtime/checkpoint/durations.ts";
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

/** The leader's checkpoint durations as a coordinator that completed checkpoints of these durations (ms) reports them. */
const checkpointsOf = (...ms: number[]) => {
  const h = new DurationHistogram();
  for (const d of ms) h.observe(d);
  return { completed: ms.length, aborted: 0, durations: h.snapshot() } as unknown as NonNullable<JobStatus["checkpoints"]>;
};

/** weir_checkpoint_duration_seconds series of one scrape: `_count`, `_sum` and each `_bucket{le}`. */
async function durationSeries(registry: MetricsRegistry): Promise<Map<string, number>> {
  const text = await registry.render();
  const series = new Map<string, number>();
  for (const m of text.matchAll(/^weir_checkpoint_duration_seconds(_\w+)\{([^}]*)\} (\S+)$/gm)) {
    const le = /\ble="([^"]*)"/.exec(m[2]!)?.[1];
    series.set(`${m[1]}${le === undefined ? "" : `{${le}}`}`, Number(m[3]));
  }
  return series;
}

test("/metrics: the checkpoint duration histogram of a worker that leads again counts on from what it showed, its buckets cumulative and equal to its count", async () => {
  let views = [view("w1", true, { checkpoints: checkpointsOf(20, 20, 300) })];
  const registry = new MetricsRegistry();
  registry.attach({ views: async () => views }, {});
  const first = await durationSeries(registry);
  assert.is(first.get("_count"), 3);
  // Deposed and leading again: a new coordinator, one checkpoint so far, of 7 ms.
  views = [view("w1", true, { checkpoints: checkpointsOf(7) })];
  const again = await durationSeries(registry);
  assert.is(again.get("_count"), 4, "3 before, 1 since");
  assert.is(again.get("_bucket{0.01}"), 1, "the new 7 ms checkpoint");
  assert.is(again.get("_bucket{0.025}"), 3, "two of 20 ms before it");
  assert.is(again.get("_bucket{+Inf}"), 4, "+Inf equals the count");
  assert.ok(Math.abs(again.get("_sum")! - 0.347) < 1e-9, `the sum counts on: ${again.get("_sum")}`);
  // The lead moves to another worker (weir dashboard's view of the job): its histogram counts on too.
  views = [view("w2", true, { checkpoints: checkpointsOf(7, 7, 7, 7, 7) })];
  const moved = await durationSeries(registry);
  assert.is(moved.get("_count"), 9, "4, then 5 on the new leader");
  assert.is(moved.get("_bucket{0.01}"), 6);
  for (const [k, v] of again) assert.ok(moved.get(k)! >= v, `${k} never goes down: ${v} then ${moved.get(k)}`);
});

test.run();
