// The dashboard's figures derived from two consecutive snapshots of a job (static/format.js): time
// shares are of the time between them. On the first snapshot there is no such time: a share is unknown
// ("–"), not the whole run's average, which the page labels "in the last second".
import { suite } from "uvu";
import * as assert from "uvu/assert";
// @ts-expect-error: the dashboard's browser modules are plain JS without types (no build step).
import { derive } from "../runtime/cli/dashboard/static/format.js";

const s = suite("dashboard figures");

const view = (at: number, busyMs: number, backpressuredMs: number, idleMs: number, recordsIn: number) => ({
  at: new Date(at).toISOString(),
  status: { subtasks: [{ id: "src#0", busyMs, backpressuredMs, idleMs, recordsIn, recordsOut: recordsIn, watermark: null }] },
});

s("a subtask backpressured for most of its run, then idle: the first snapshot shows no share, the next the last second's", () => {
  const first = view(100_000, 1_000, 47_000, 52_000, 5000);
  const fresh = (derive(undefined, first) as Map<string, { busy: number | null; backpressured: number | null; idle: number | null; inRate: number | null }>).get("src#0")!;
  assert.equal([fresh.busy, fresh.backpressured, fresh.idle, fresh.inRate], [null, null, null, null]);
  const next = (derive(first, view(101_000, 1_000, 47_000, 53_000, 5000)) as Map<string, { busy: number; backpressured: number; idle: number; inRate: number }>).get("src#0")!;
  assert.equal([next.busy, next.backpressured, next.idle, next.inRate], [0, 0, 1, 0]);
});

s.run();
