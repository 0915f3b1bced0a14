// Timers survive a crash: a `weir run` process with event-time windows and processing-time timers is
// killed with SIGKILL once its timers are registered and a checkpoint holding them completed, then run
// again. The restored timers fire (the windows when the watermark passes them, the processing-time
// timers whose time passed during the downtime at once) and the output equals an uninterrupted run's.
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { spawn, type ChildProcess } from "node:child_process";
import { connect, type NatsConnection } from "@nats-io/transport-node";
import { jetstreamManager } from "@nats-io/jetstream";
import { withServer } from "./helpers/nats-server.ts";
import { createStream, publishAll, readStream } from "./helpers/streams.ts";
import { fetchStatus, formatStatus } from "../runtime/cli/commands/control.ts";
import type { JobStatus } from "../actors/job/job-runner.ts";
import type { Fired, WindowCount } from "./fixtures/jobs/timers.ts";

const crash = suite("timers after a crash");
const nats = withServer(crash);

const JOB = "tests/fixtures/jobs/timers.ts";
/** Processing-time timers are due this long after they are published: run 1 is killed well before. */
const DUE_IN_MS = 8000;

interface Run { child: ChildProcess; exited: Promise<number | null>; stderr: () => string }

function startJob(url: string, env: Record<string, string>): Run {
  const child = spawn(process.execPath, ["bin/weir.mjs", "run", JOB, "--nats", url], { env: { ...process.env, ...env }, stdio: ["ignore", "ignore", "pipe"] });
  let stderr = "";
  child.stderr!.on("data", (d) => { stderr += d; });
  const exited = new Promise<number | null>((resolve) => child.on("exit", (code) => resolve(code)));
  return { child, exited, stderr: () => stderr };
}

/** Sum of one operator metric over every subtask. */
function metric(s: JobStatus, name: string): number {
  let n = 0;
  for (const t of s.subtasks) for (const m of Object.values(t.operators)) n += m[name] ?? 0;
  return n;
}

/** Polls the job's status until `ok` holds; fails after `ms` with the last status. */
async function statusUntil(nc: NatsConnection, job: string, run: Run, what: string, ok: (s: JobStatus) => boolean, ms = 60_000): Promise<JobStatus> {
  const deadline = Date.now() + ms;
  let last: JobStatus | undefined;
  while (Date.now() < deadline) {
    if (run.child.exitCode !== null) throw new Error(`the job exited while waiting for ${what}: ${run.stderr().slice(-800)}`);
    last = await fetchStatus(nc, job).catch(() => undefined);
    if (last && ok(last)) return last;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`timed out waiting for ${what}; last status: ${JSON.stringify(last?.subtasks.map((t) => t.operators))}`);
}

async function streamUntil<T>(nc: NatsConnection, stream: string, count: number, ms = 60_000): Promise<T[]> {
  const deadline = Date.now() + ms;
  let out: T[] = [];
  while (Date.now() < deadline) {
    out = await readStream<T>(nc, stream);
    if (out.length >= count) return out;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`${stream} holds ${out.length} of ${count} expected records`);
}

for (const backend of ["jetstream-kv", "heap"] as const) {
  crash(`SIGKILL after a checkpoint with open windows and pending processing-time timers (${backend})`, async () => {
    const P = backend === "heap" ? "TH" : "TK";
    const p = P.toLowerCase();
    const job = `timers-${p}`;
    const env = { TIMERS_PREFIX: P, TIMERS_BACKEND: backend, TIMERS_CHECKPOINT_MS: "200" };
    const nc = await connect({ servers: nats.url });
    const runs: Run[] = [];
    try {
      for (const [name, subjects] of [[`${P}_W`, [`${p}w.*`]], [`${P}_P`, [`${p}p.*`]], [`${P}_OW`, [`${p}ow.>`]], [`${P}_OP`, [`${p}op.>`]]] as const) {
        await createStream(nc, name, [...subjects]);
      }
      await publishAll(nc, [[`${p}w.a`, { k: "a", ts: 100 }], [`${p}w.a`, { k: "a", ts: 200 }], [`${p}w.b`, { k: "b", ts: 300 }]]);
      const due = Date.now() + DUE_IN_MS;
      const dues = Array.from({ length: 20 }, (_, i) => ({ k: `k${i}`, due: due + i }));
      await publishAll(nc, dues.map((d, i) => [`${p}p.${i % 2 ? "a" : "b"}`, d] as [string, unknown]));

      const first = startJob(nats.url, env);
      runs.push(first);
      const registered = await statusUntil(nc, job, first, "2 event-time and 20 processing-time timers",
        (s) => metric(s, "eventTimers") === 2 && metric(s, "processingTimers") === 20);
      const completed = registered.checkpoints?.completed ?? 0;
      // The checkpoint in flight may have started before the timers: the one after it holds them.
      const checkpointed = await statusUntil(nc, job, first, "two more checkpoints", (s) => (s.checkpoints?.completed ?? 0) >= completed + 2);
      first.child.kill("SIGKILL");
      await first.exited;
      assert.is(metric(checkpointed, "timersFired"), 0, `precondition: no timer fired before the kill (run 1 took longer than ${DUE_IN_MS} ms?)`);
      assert.is((await readStream(nc, `${P}_OW`)).length, 0, "no window fired before the kill");
      assert.is((await readStream(nc, `${P}_OP`)).length, 0, "no processing-time timer fired before the kill");

      const second = startJob(nats.url, env);
      runs.push(second);
      // `weir status` shows the timers the run restored.
      const restored = await statusUntil(nc, job, second, "the restored timers in the status",
        (s) => metric(s, "restoredEventTimers") === 2 && metric(s, "restoredProcessingTimers") === 20);
      assert.match(formatStatus(restored), /\(restored \d+\/\d+\)/, "the status table shows what each subtask restored");
      await publishAll(nc, [[`${p}w.a`, { k: "c", ts: 5000 }], [`${p}w.b`, { k: "d", ts: 5000 }]]);
      await streamUntil(nc, `${P}_OW`, 2);
      await streamUntil(nc, `${P}_OP`, 20);
      second.child.kill("SIGTERM");
      assert.is(await second.exited, 0, `run 2 stops cleanly: ${second.stderr().slice(-800)}`);

      // What an uninterrupted run emits: both windows of [0, 1000) once, every timer once.
      const windows = (await readStream<WindowCount>(nc, `${P}_OW`)).sort((a, b) => a.k.localeCompare(b.k));
      assert.equal(windows, [{ k: "a", w: 0, n: 2 }, { k: "b", w: 0, n: 1 }]);
      const fired = (await readStream<Fired>(nc, `${P}_OP`)).sort((a, b) => a.due - b.due);
      assert.equal(fired, dues);
    } finally {
      for (const r of runs) if (r.child.exitCode === null) r.child.kill("SIGKILL");
      await Promise.all(runs.map((r) => r.exited));
      const jsm = await jetstreamManager(nc);
      for (const s of [`${P}_W`, `${P}_P`, `${P}_OW`, `${P}_OP`]) await jsm.streams.delete(s).catch(() => {});
      await nc.close();
    }
  });
}

crash.run();
