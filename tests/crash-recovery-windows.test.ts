// Exactly-once event-time windows under crashes: a windowed job with an exactly-once sink is SIGKILLed
// after checkpoints that hold open windows, restarted each time, and finally run to the end. Every
// (key, window) must fire once with all its readings: a window whose readings all came before the
// checkpoint fires only if its timer was restored with the state.
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { connect } from "@nats-io/transport-node";
import { withServer } from "./helpers/nats-server.ts";
import { createStream, publishAll, readStream } from "./helpers/streams.ts";
import { runJob } from "./helpers/crash.ts";
import type { WindowCount } from "./fixtures/jobs/timers.ts";
import { faultRounds } from "./helpers/fault-rounds.ts";

const crash = suite("crash recovery, windows");
/** Runs per backend, each SIGKILLed after a checkpoint of its own (npm run faults: more). */
const RUNS = faultRounds(4);
const nats = withServer(crash);

const WINDOWS_JOB = "tests/fixtures/jobs/timers.ts";

for (const backend of ["jetstream-kv", "heap"]) {
  crash(`SIGKILL at random moments, event-time windows, ${backend} state: every window once, complete`, async () => {
    const nc = await connect({ servers: nats.url });
    const P = backend === "heap" ? "CH" : "CK";
    const p = P.toLowerCase();
    try {
      for (const [name, subject] of [[`${P}_W`, `${p}w.*`], [`${P}_P`, `${p}p.*`], [`${P}_OW`, `${p}ow.>`], [`${P}_OP`, `${p}op.>`]] as const) await createStream(nc, name, [subject]);
      // Readings 1 ms apart: 1 s windows of 1000 readings over 63 keys, each key's readings of a window
      // together (16 ms), so a checkpoint in a window's middle holds keys whose window is open and gets no
      // more readings: only its restored timer fires it. The killed runs read without end (a bounded
      // run of 5,000 readings sometimes ended before its kill on a busy machine, and nothing was
      // killed): each is SIGKILLed a random moment after a checkpoint of its own, which holds at least
      // the chunk's last window open (the watermark stops 1 ms short of its end), so every later run
      // starts with windows only a restored timer fires. The final run is bounded: it ends its input with
      // the final watermark, which fires every window.
      const events = Array.from({ length: 5000 * RUNS }, (_, i) => ({ k: `k${Math.floor((i % 1000) / 16)}`, ts: i }));
      const env = { TIMERS_PREFIX: P, TIMERS_BACKEND: backend, TIMERS_CHECKPOINT_MS: "150" };
      let seed = backend.length + 7;
      const rand = () => ((seed = (seed * 1103515245 + 12345) & 0x7fffffff) / 0x7fffffff);
      let kills = 0;
      const restoredFrom = new Set<number>();
      const runs = RUNS;
      const chunk = events.length / runs;
      for (let i = 0; i < runs; i++) {
        // One subject per source subtask, in timestamp order: no reading is ever late.
        await publishAll(nc, events.slice(i * chunk, (i + 1) * chunk).map((e) => [`${p}w.${e.ts % 2 ? "a" : "b"}`, e] as [string, unknown]));
        const r = await runJob(nats.url, { ...env, TIMERS_BOUNDED: "0" }, Math.floor(rand() * 300), WINDOWS_JOB, { nc, job: `timers-${p}` });
        const restored = /restoring from checkpoint (\d+)/.exec(r.stderr);
        if (restored) restoredFrom.add(Number(restored[1]));
        assert.ok(r.killed, `run ${i} was killed after a checkpoint of its own: ${r.stderr.slice(-500)}`);
        kills++;
      }
      assert.is(kills, runs, "every run before the last was killed");
      assert.ok(restoredFrom.size >= runs - 1, `runs recovered from checkpoints (${[...restoredFrom].join(", ") || "none"})`);
      const last = await runJob(nats.url, { ...env, TIMERS_BOUNDED: "1" }, undefined, WINDOWS_JOB);
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
