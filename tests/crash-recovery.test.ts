// Exactly-once under crashes: a keyed job with an exactly-once JetStream sink is killed with SIGKILL at
// random moments (some during checkpoints), restarted each time, and finally run to the end. Its output
// must equal the reference computation: every key's counts 1..n, each exactly once. The same for a job
// of event-time windows, whose open windows' timers must survive the kills: every window once, complete.
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { spawn } from "node:child_process";
import { connect, type NatsConnection } from "@nats-io/transport-node";
import { withServer } from "./helpers/nats-server.ts";
import { createStream, publishAll, readStream } from "./helpers/streams.ts";
import type { WindowCount } from "./fixtures/jobs/timers.ts";
import { fetchStatus } from "../runtime/cli/commands/control.ts";

const crash = suite("crash recovery");
const nats = withServer(crash);

const JOB = "tests/fixtures/jobs/exactly-once-counts.ts";
const WINDOWS_JOB = "tests/fixtures/jobs/timers.ts";

/** Runs the job; with `killAfterMs`, SIGKILLs it that long after it reports running (startup varies with load). */
function runJob(url: string, env: Record<string, string>, killAfterMs?: number, job = JOB, afterCheckpoint?: { nc: NatsConnection; job: string }): Promise<{ code: number | null; killed: boolean; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ["bin/weir.mjs", "run", job, "--nats", url], { env: { ...process.env, ...env }, stdio: ["ignore", "ignore", "pipe"] });
    let stderr = "";
    let killed = false;
    let timer: NodeJS.Timeout | undefined;
    let armed = false;
    const kill = () => { timer = setTimeout(() => { killed = true; child.kill("SIGKILL"); }, killAfterMs); };
    // With `afterCheckpoint`: the delay counts from the run's first completed checkpoint (so that the
    // kill tests a recovery however slow the machine is), unless the run ends first.
    const killAfterFirstCheckpoint = async (): Promise<void> => {
      while (child.exitCode === null) {
        const s = await fetchStatus(afterCheckpoint!.nc, afterCheckpoint!.job).catch(() => undefined);
        if ((s?.checkpoints?.completed ?? 0) >= 1) return kill();
        await new Promise((r) => setTimeout(r, 20));
      }
    };
    child.stderr.on("data", (d) => {
      stderr += d;
      if (killAfterMs !== undefined && !armed && stderr.includes("weir: running")) {
        armed = true;
        if (afterCheckpoint) void killAfterFirstCheckpoint(); else kill();
      }
    });
    child.on("exit", (code) => { if (timer) clearTimeout(timer); resolve({ code, killed, stderr }); });
  });
}

async function checkOutput(nc: NatsConnection, events: Array<{ id: number; key: string }>): Promise<void> {
  const out = await readStream<{ key: string; n: number; id: number }>(nc, "OUT");
  const expected = new Map<string, number>();
  for (const e of events) expected.set(e.key, (expected.get(e.key) ?? 0) + 1);
  const seen = new Map<string, number[]>();
  for (const o of out) seen.set(o.key, [...(seen.get(o.key) ?? []), o.n]);
  for (const [key, n] of expected) {
    const counts = (seen.get(key) ?? []).sort((a, b) => a - b);
    assert.equal(counts, Array.from({ length: n }, (_, i) => i + 1), `key ${key}: counts 1..${n}, each exactly once`);
  }
  assert.is(out.length, events.length, "one output per input record, none lost, none duplicated");
}

for (const backend of ["jetstream-kv", "heap"]) {
  crash(`SIGKILL at random moments, ${backend} state: output equals the reference exactly`, async () => {
    const nc = await connect({ servers: nats.url });
    try {
      const jsm = await (await import("@nats-io/jetstream")).jetstreamManager(nc);
      for (const s of ["IN", "OUT", "weir_crashy_changelog", "KV_weir_crashy_state", "KV_weir_crashy_ckpt", "weir_crashy_staging"]) await jsm.streams.delete(s).catch(() => {});
      await createStream(nc, "IN", ["in.*"]);
      const events = Array.from({ length: 200_000 }, (_, i) => ({ id: i, key: `k${(i * 31) % 101}` }));
      const publish = (from: number, to: number) => publishAll(nc, events.slice(from, to).map((e) => [`in.${e.id % 2 ? "a" : "b"}`, e] as [string, unknown]));
      const env = { CRASHY_BACKEND: backend, CRASHY_CHECKPOINT_MS: "150" };
      let seed = backend.length;
      const rand = () => ((seed = (seed * 1103515245 + 12345) & 0x7fffffff) / 0x7fffffff);
      let kills = 0;
      const restoredFrom = new Set<number>();
      // Input keeps arriving between runs, as in a live stream; each run reads what is there (bounded).
      const chunk = events.length / 10;
      for (let i = 0; i < 10; i++) {
        await publish(i * chunk, (i + 1) * chunk);
        // Kill between the start of processing and about ten checkpoint intervals later.
        const r = await runJob(nats.url, env, Math.floor(rand() * 1500));
        const restored = /restoring from checkpoint (\d+)/.exec(r.stderr);
        if (restored) restoredFrom.add(Number(restored[1]));
        if (r.killed) kills++;
        else assert.is(r.code, 0, `run ${i} ended on its own: ${r.stderr.slice(-500)}`);
      }
      assert.ok(kills >= 8, `most runs were killed (${kills})`);
      // Otherwise the test would only show that a run from scratch is right.
      assert.ok(restoredFrom.size >= 2, `runs recovered from checkpoints (${[...restoredFrom].join(", ") || "none"})`);
      const last = await runJob(nats.url, env);
      assert.is(last.code, 0, `the final run completes: ${last.stderr.slice(-800)}`);
      await checkOutput(nc, events);
    } finally {
      await nc.close();
    }
  });
}

for (const backend of ["jetstream-kv", "heap"]) {
  crash(`SIGKILL at random moments, event-time windows, ${backend} state: every window once, complete`, async () => {
    const nc = await connect({ servers: nats.url });
    const P = backend === "heap" ? "CH" : "CK";
    const p = P.toLowerCase();
    try {
      for (const [name, subject] of [[`${P}_W`, `${p}w.*`], [`${P}_P`, `${p}p.*`], [`${P}_OW`, `${p}ow.>`], [`${P}_OP`, `${p}op.>`]] as const) await createStream(nc, name, [subject]);
      // Readings 1 ms apart: 1 s windows of 1000 readings over 61 keys. A run ends its bounded input with
      // the final watermark, which fires every window: chunks end on window boundaries, so that a run
      // that completes never fires a window that later readings belong to.
      const events = Array.from({ length: 30_000 }, (_, i) => ({ k: `k${(i * 31) % 61}`, ts: i }));
      const env = { TIMERS_PREFIX: P, TIMERS_BACKEND: backend, TIMERS_CHECKPOINT_MS: "150", TIMERS_BOUNDED: "1" };
      let seed = backend.length + 7;
      const rand = () => ((seed = (seed * 1103515245 + 12345) & 0x7fffffff) / 0x7fffffff);
      let kills = 0;
      const restoredFrom = new Set<number>();
      const runs = 6;
      const chunk = events.length / runs;
      for (let i = 0; i < runs; i++) {
        // One subject per source subtask, in timestamp order: no reading is ever late.
        await publishAll(nc, events.slice(i * chunk, (i + 1) * chunk).map((e) => [`${p}w.${e.ts % 2 ? "a" : "b"}`, e] as [string, unknown]));
        const r = await runJob(nats.url, env, Math.floor(rand() * 300), WINDOWS_JOB, { nc, job: `timers-${p}` });
        const restored = /restoring from checkpoint (\d+)/.exec(r.stderr);
        if (restored) restoredFrom.add(Number(restored[1]));
        if (r.killed) kills++;
        else assert.is(r.code, 0, `run ${i} ended on its own: ${r.stderr.slice(-500)}`);
      }
      assert.ok(kills >= 2, `runs were killed (${kills})`);
      assert.ok(restoredFrom.size >= 2, `runs recovered from checkpoints (${[...restoredFrom].join(", ") || "none"})`);
      const last = await runJob(nats.url, env, undefined, WINDOWS_JOB);
      assert.is(last.code, 0, `the final run completes: ${last.stderr.slice(-800)}`);
      const expected = new Map<string, number>();
      for (const e of events) {
        const id = `${e.k}@${Math.floor(e.ts / 1000) * 1000}`;
        expected.set(id, (expected.get(id) ?? 0) + 1);
      }
      const out = await readStream<WindowCount>(nc, `${P}_OW`);
      const got = new Map<string, number[]>();
      for (const o of out) got.set(`${o.k}@${o.w}`, [...(got.get(`${o.k}@${o.w}`) ?? []), o.n]);
      for (const [id, n] of expected) assert.equal(got.get(id), [n], `window ${id}: fired once with all ${n} readings`);
      assert.is(out.length, expected.size, "one result per window, none lost, none duplicated");
    } finally {
      await nc.close();
    }
  });
}

crash.run();
