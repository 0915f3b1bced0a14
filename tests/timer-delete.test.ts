// A deleted timer never fires, as with Flink's TimerService.deleteEventTimeTimer /
// deleteProcessingTimeTimer: in a running job (async state on and off, heap and KV), and across a savepoint
// and a resume, where the timer deleted before the savepoint must not come back with the restored timers
// while its sibling still fires. Timers of one domain fire in time order, so once the later, kept timer's
// output is there, the earlier, deleted one would have been seen before it. Processing time runs on a
// ManualClock.
import { suite } from "uvu";
import * as assert from "uvu/assert";
import * as t from "io-ts";
import { connect, type NatsConnection } from "@nats-io/transport-node";
import { Sinks, Sources, StreamEnvironment, WatermarkStrategy, type JobOptions } from "../mod.ts";
import { ManualClock } from "../runtime/core/clock.ts";
import type { JobStatus } from "../actors/job/job-runner.ts";
import { withServer } from "./helpers/nats-server.ts";
import { createStream, publishAll, readStream } from "./helpers/streams.ts";
import { eventually } from "./helpers/cli.ts";

const test = suite("timer deletion");
const nats = withServer(test);

/** reg/del: an event-time timer at `at`; preg/pdel: a processing-time one; tick: nothing (moves the watermark). */
const Command = t.type({ k: t.string, ts: t.number, op: t.keyof({ reg: null, del: null, preg: null, pdel: null, tick: null }), at: t.number });
type Command = t.TypeOf<typeof Command>;
interface Fired { k: string; domain: string; due: number }

function job(P: string, clock: ManualClock, options: Partial<JobOptions>): StreamEnvironment {
  const p = P.toLowerCase();
  const env = StreamEnvironment.create({ name: `tdel-${p}`, nats: nats.url, parallelism: 2, checkpointIntervalMs: 200, mode: "streaming", ...options }, { log: () => {}, clock });
  // One source subtask, watermarks from the source itself: a subtask without records would hold the
  // watermark back. A watermark after every record (the periodic one runs on the manual clock).
  env.fromSource(Sources.jetstream({ stream: `${P}_IN`, subjects: [`${p}in.>`], codec: Command }), {
    uid: "commands", parallelism: 1, watermarks: WatermarkStrategy.forMonotonousTimestamps((c: Command) => c.ts).withWatermarkPerRecord(),
  })
    .keyBy((c) => c.k)
    .process<Fired>({
      processElement(c, ctx) {
        if (c.op === "reg") ctx.timers.registerEventTimeTimer(c.at);
        else if (c.op === "del") ctx.timers.deleteEventTimeTimer(c.at);
        else if (c.op === "preg") ctx.timers.registerProcessingTimeTimer(c.at);
        else if (c.op === "pdel") ctx.timers.deleteProcessingTimeTimer(c.at);
      },
      onTimer(due, ctx) { ctx.collect({ k: ctx.key, domain: ctx.timeDomain ?? "?", due }); },
    }, { uid: "timers" })
    .sinkTo(Sinks.jetstream({ stream: `${P}_OUT`, subject: (f) => `${p}out.${f.k}` }), { uid: "out" });
  return env;
}

/** For keys a and b: event-time timers at 100 and 200, processing-time ones at 5000 and 6000; then the first of each deleted. */
function registerThenDelete(P: string, from: number): Array<[string, Command]> {
  const subject = `${P.toLowerCase()}in.x`;
  let ts = from;
  const cmds: Array<[string, Command]> = [];
  for (const k of ["a", "b"]) {
    for (const [op, at] of [["reg", 100], ["reg", 200], ["preg", 5000], ["preg", 6000], ["del", 100], ["pdel", 5000]] as const) cmds.push([subject, { k, ts: ts++, op, at }]);
  }
  return cmds;
}

function metric(s: JobStatus, name: string): number {
  let n = 0;
  for (const st of s.subtasks) for (const m of Object.values(st.operators)) n += m[name] ?? 0;
  return n;
}

/** Moves both time domains past every timer and waits for the kept ones' outputs (two per key). */
async function fireAll(nc: NatsConnection, P: string, clock: ManualClock): Promise<Fired[]> {
  await publishAll(nc, ["a", "b"].map((k) => [`${P.toLowerCase()}in.x`, { k, ts: 1000, op: "tick", at: 0 }] as [string, unknown]));
  const fired = await eventually("the kept timers' outputs", 60_000, async () => {
    clock.advance(500);
    const out = await readStream<Fired>(nc, `${P}_OUT`);
    return out.length >= 4 ? out : undefined;
  });
  return fired.sort((x, y) => x.k.localeCompare(y.k) || x.due - y.due);
}

const kept: Fired[] = ["a", "b"].flatMap((k) => [{ k, domain: "event", due: 200 }, { k, domain: "processing", due: 6000 }]);

for (const [name, options] of [
  ["heap, async state", { stateBackend: "heap" }],
  ["heap, sync state", { stateBackend: "heap", asyncState: { enabled: false } }],
  ["KV, async state", { stateBackend: "jetstream-kv" }],
  ["KV, sync state", { stateBackend: "jetstream-kv", asyncState: { enabled: false } }],
] as const) {
  test(`a deleted event-time or processing-time timer never fires; the other one does (${name})`, async () => {
    const P = `L${name.replace(/[^a-zA-Z]/g, "").toUpperCase()}`;
    const nc = await connect({ servers: nats.url });
    const clock = new ManualClock(0);
    const env = job(P, clock, options);
    try {
      await createStream(nc, `${P}_IN`, [`${P.toLowerCase()}in.>`]);
      await createStream(nc, `${P}_OUT`, [`${P.toLowerCase()}out.>`]);
      const client = await env.executeAsync();
      await publishAll(nc, registerThenDelete(P, 10));
      await eventually("one timer of each domain left per key", 60_000, () => (metric(client.status(), "eventTimers") === 2 && metric(client.status(), "processingTimers") === 2 ? true : undefined));
      assert.equal(await fireAll(nc, P, clock), kept);
      await client.stop();
    } finally {
      await env.close();
      await nc.close();
    }
  });
}

for (const backend of ["heap", "jetstream-kv"] as const) {
  test(`a timer deleted before a savepoint stays deleted after the job resumes from it (${backend})`, async () => {
    const P = backend === "heap" ? "SH" : "SK";
    const nc = await connect({ servers: nats.url });
    const clock = new ManualClock(0);
    try {
      await createStream(nc, `${P}_IN`, [`${P.toLowerCase()}in.>`]);
      await createStream(nc, `${P}_OUT`, [`${P.toLowerCase()}out.>`]);
      const first = job(P, clock, { stateBackend: backend });
      try {
        const client = await first.executeAsync();
        await publishAll(nc, registerThenDelete(P, 10));
        await eventually("one timer of each domain left per key", 60_000, () => (metric(client.status(), "eventTimers") === 2 && metric(client.status(), "processingTimers") === 2 ? true : undefined));
        assert.is((await client.stop({ savepoint: true })).state, "stopped");
      } finally {
        await first.close();
      }
      assert.is((await readStream(nc, `${P}_OUT`)).length, 0, "no timer fired before the savepoint");
      const second = job(P, clock, { stateBackend: backend, parallelism: 3 });
      try {
        const client = await second.executeAsync();
        const s = client.status();
        assert.is(metric(s, "restoredEventTimers"), 2, "the kept event-time timers restored, not the deleted ones");
        assert.is(metric(s, "restoredProcessingTimers"), 2, "the kept processing-time timers restored, not the deleted ones");
        assert.equal(await fireAll(nc, P, clock), kept);
        await client.stop();
      } finally {
        await second.close();
      }
    } finally {
      await nc.close();
    }
  });
}

test.run();
