// A job on two workers at rest: its periodic checkpoints stop (checkpointIntervalWhileIdleMs 0), and a
// subtask on the follower telling the leader of new input starts them again, so the exactly-once output
// of that input appears. The new input reaches only the follower's subtasks (its source's subjects, keys
// of its count subtask's key groups), so the leader hears of it over NATS alone. Real `weir run`
// processes on a real nats-server.
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { connect, type NatsConnection } from "@nats-io/transport-node";
import { withServer } from "./helpers/nats-server.ts";
import { publishAll } from "./helpers/streams.ts";
import { startWeir, eventually, type WeirProcess } from "./helpers/cli.ts";
import { reset, checkOutputExplained, status, runningOn, stopAll, KEYS } from "./helpers/worker-counts.ts";
import { assignToKeyGroup, DEFAULT_MAX_PARALLELISM, KeyGroupRange } from "../state/key-groups.ts";
import type { JobStatus } from "../actors/job/job-status.ts";

const test = suite("workers at rest");
const nats = withServer(test);
const JOB = "tests/fixtures/jobs/worker-counts.ts";

const input = (from: number, n: number): Array<[string, unknown]> =>
  Array.from({ length: n }, (_, i) => [`in.${(from + i) % 4}`, { id: from + i, key: `k${((from + i) * 7) % KEYS}` }]);
const P = 2;

/** `n` events (ids from `from` on) that only `source` reads (subjects in.j, j % P) with keys `count` holds. */
function inputFor(source: number, count: number, from: number, n: number): Array<[string, unknown]> {
  const range = KeyGroupRange.forOperator(DEFAULT_MAX_PARALLELISM, P, count);
  const keys = Array.from({ length: KEYS }, (_, k) => `k${k}`).filter((k) => range.contains(assignToKeyGroup(k, DEFAULT_MAX_PARALLELISM)));
  const subjects = [0, 1, 2, 3].filter((j) => j % P === source);
  return Array.from({ length: n }, (_, i) => [`in.${subjects[i % subjects.length]}`, { id: from + i, key: keys[i % keys.length]! }]);
}

const ENV = { WORKERS_CHECKPOINT_MS: "100", WORKERS_IDLE_CHECKPOINT_MS: "0", WORKERS_BACKEND: "heap", WORKERS_PARALLELISM: String(P) };
const start = () => startWeir(["run", JOB, "--nats", nats.url], { env: ENV });

/** Fresh streams, two workers of the job (checkpoints every 100 ms, none at rest), its first 200 records' output exact. */
async function twoWorkersAfterInput(nc: NatsConnection, procs: WeirProcess[]): Promise<JobStatus> {
  await reset(nc);
  procs.push(start(), start());
  const running = await runningOn(nc, procs, "the job runs on two workers");
  await publishAll(nc, input(0, 200));
  await checkOutputExplained(nc, 200, procs);
  return running;
}

test("no checkpoints while at rest; input on any worker's subtasks starts them again: output exact", async () => {
  const nc = await connect({ servers: nats.url });
  const procs: WeirProcess[] = [];
  try {
    const running = await twoWorkersAfterInput(nc, procs);
    const follower = running.workers!.find((w) => !w.leader)!;
    const indexOf = (vertex: string) => follower.subtasks.filter((id) => id.startsWith(`${vertex}#`)).map((id) => Number(id.slice(id.indexOf("#") + 1)));
    const [source, count] = [indexOf("events"), indexOf("count")];
    assert.ok(source.length === 1 && count.length === 1, `the follower runs one source and one count subtask: ${follower.subtasks.join(", ")}`);
    const checkpoints = async () => (await status(nc))?.checkpoints;
    const rest = await eventually("10 checkpoints skipped", 60_000, async () => {
      const c = await checkpoints();
      return c && (c.skipped ?? 0) >= 10 ? c : undefined;
    });
    await eventually("10 more skipped", 60_000, async () => (((await checkpoints())?.skipped ?? 0) >= rest.skipped! + 10 ? true : undefined));
    assert.is((await checkpoints())?.completed, rest.completed, "no checkpoint while at rest");
    await publishAll(nc, inputFor(source[0]!, count[0]!, 200, 50));
    await checkOutputExplained(nc, 250, procs);
    assert.ok(((await checkpoints())?.completed ?? 0) > rest.completed);
  } finally {
    await stopAll(procs);
    await nc.close();
  }
});

test("the leader SIGKILLed while the job is at rest: the new one restores, rests too, and new input's output is exact", async () => {
  const nc = await connect({ servers: nats.url });
  const procs: WeirProcess[] = [];
  try {
    const running = await twoWorkersAfterInput(nc, procs);
    await eventually("checkpoints skipped", 60_000, async () => (((await status(nc))?.checkpoints?.skipped ?? 0) >= 5 ? true : undefined));
    const leader = procs.findIndex((p) => p.child.pid === running.workers!.find((w) => w.leader)!.pid);
    procs[leader]!.child.kill("SIGKILL");
    await procs[leader]!.exited;
    procs[leader] = start();
    await runningOn(nc, procs, "the job runs on both workers again");
    await eventually("the new leader's checkpoints skipped too", 60_000, async () => (((await status(nc))?.checkpoints?.skipped ?? 0) >= 5 ? true : undefined));
    await publishAll(nc, input(200, 200));
    await checkOutputExplained(nc, 400, procs);
  } finally {
    await stopAll(procs);
    await nc.close();
  }
});

test.run();
