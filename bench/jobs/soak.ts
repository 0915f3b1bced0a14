// The job of `npm run soak` (bench/soak.ts), run as a real `weir run` child process: events from the
// JetStream stream SOAK_IN (two subjects, one per source subtask), keyed by `key`; a running count per key
// in keyed valueState, every new count to SOAK_COUNTS; and a count per key and event-time tumbling window
// (SOAK_WINDOW_MS) to SOAK_WINDOWS. Both sinks exactly-once, checkpoints every second on jetstream-kv.
import * as t from "io-ts";
import { defineJob, Sinks, Sources, TumblingEventTimeWindows, valueState, WatermarkStrategy } from "weir";

/** What the soak producer publishes: `ts` is event time, derived from `id` (see bench/soak-model.ts). */
const Event = t.type({ id: t.number, key: t.string, ts: t.number });
const counter = valueState("count", t.number);

export default defineJob({
  name: "soak",
  parallelism: 2,
  stateBackend: "jetstream-kv",
  checkpointIntervalMs: 1000,
}, (env) => {
  const events = env.fromSource(
    Sources.jetstream({ stream: "SOAK_IN", subjects: ["soak.in.0", "soak.in.1"], codec: Event }),
    { uid: "events", watermarks: WatermarkStrategy.boundedOutOfOrderness(1000, (e: t.TypeOf<typeof Event>) => e.ts) },
  );
  events
    .keyBy((e) => e.key)
    .process<{ key: string; n: number }>({
      async processElement(e, ctx) {
        const n = ((await ctx.state(counter).value()) ?? 0) + 1;
        await ctx.state(counter).update(n);
        ctx.collect({ key: e.key, n });
      },
    }, { uid: "count" })
    .sinkTo(Sinks.jetstream({ stream: "SOAK_COUNTS", subject: "soak.count" }), { uid: "counts-out" });
  events
    .map((e) => ({ key: e.key, ts: e.ts, c: 1 }), { uid: "one" })
    .keyBy((w) => w.key)
    .window(TumblingEventTimeWindows.of(Number(process.env.SOAK_WINDOW_MS ?? 10_000)))
    // The earliest timestamp names the window (start = floor(ts / size) * size) for the checker.
    .reduce((a, b) => ({ key: a.key, ts: Math.min(a.ts, b.ts), c: a.c + b.c }), { uid: "windows" })
    .sinkTo(Sinks.jetstream({ stream: "SOAK_WINDOWS", subject: "soak.window" }), { uid: "windows-out" });
});
