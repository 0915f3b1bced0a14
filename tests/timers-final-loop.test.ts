// An onTimer that registers the next timer (ctx.timestamp + interval) never ends once the watermark is
// final (the end of input), in Flink as here: the job says so in its log instead of spinning silently, in
// both modes, stays responsive meanwhile (the event loop gets a turn every 1000 timers) and can be
// cancelled; a job that checks ctx.currentWatermark() against MAX_WATERMARK ends.
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { MAX_WATERMARK, Sources, StreamEnvironment, WatermarkStrategy } from "../mod.ts";
import { FinalTimerWatch } from "../runtime/keyed/timers/final-timer-watch.ts";
import { withServer } from "./helpers/nats-server.ts";
import { eventually } from "./helpers/cli.ts";

const test = suite("timers at the final watermark");
const nats = withServer(test);

interface Ev { k: string; ts: number }

function periodic(name: string, mode: "streaming" | "batch", log: (line: string) => void, stopAtEnd: boolean, asyncState = true): StreamEnvironment {
  const env = StreamEnvironment.create({ name, nats: nats.url, parallelism: 1, stateBackend: "heap", mode, asyncState: { enabled: asyncState } }, { log });
  env.fromSource(Sources.array<Ev>([{ k: "a", ts: 0 }, { k: "b", ts: 5 }]), { watermarks: WatermarkStrategy.forMonotonousTimestamps<Ev>((e) => e.ts) })
    .keyBy((e) => e.k)
    .process<string>({
      processElement(e, ctx) { ctx.timers.registerEventTimeTimer(e.ts + 1000); },
      onTimer(ts, ctx) {
        if (stopAtEnd && ctx.currentWatermark() === MAX_WATERMARK) { ctx.collect(`${ctx.key} ended at ${ts}`); return; }
        ctx.timers.registerEventTimeTimer(ts + 1000);
      },
    }, { name: "ticks" })
    .sinkTo({ kind: "discard", createWriter: async () => ({ write: () => {}, flush: async () => {}, close: async () => {} }) });
  return env;
}

for (const [mode, asyncState] of [["streaming", true], ["streaming", false], ["batch", true]] as const) {
  test(`${mode}${asyncState ? "" : ", sync execution"}: timers that keep registering the next one at the final watermark are named in the log; cancel ends the job`, async () => {
    const lines: string[] = [];
    const env = periodic(`final-loop-${mode}-${asyncState}`, mode, (l) => lines.push(l), false, asyncState);
    try {
      const client = await env.executeAsync();
      const line = await eventually("the warning", 120_000, async () => lines.find((l) => l.includes("at the final watermark")));
      assert.match(line, /^operator "ticks" subtask 0: \d{7} event-time timers fired at the final watermark \(the end of input\) and their onTimer keeps registering more \(key "[ab]" the latest\): a timer that registers the next one \(ctx\.timestamp \+ interval\) runs for ever once the watermark is final; register none when ctx\.currentWatermark\(\) is MAX_WATERMARK$/);
      const fired = () => Object.values(client.status().subtasks.find((s) => s.name.includes("ticks"))?.operators ?? {}).reduce((n, m) => n + (m.timersFired ?? 0), 0);
      const before = fired();
      await eventually("the job's status moves on while its timers fire", 60_000, async () => (fired() > before ? true : undefined));
      await client.cancel();
    } finally {
      await env.close();
    }
  });
}

test("processing-time timers due at once for ever (each registers one at its own time): the job's status moves on and cancel ends it", async () => {
  const env = StreamEnvironment.create({ name: "final-loop-processing", nats: nats.url, parallelism: 1, stateBackend: "heap", mode: "streaming" }, { log: () => {} });
  let fired = 0;
  env.fromSource(Sources.generator({ ratePerSec: 10, make: () => ({ k: "a" }) }))
    .keyBy((e) => e.k)
    .process<string>({
      processElement(_e, ctx) { ctx.timers.registerProcessingTimeTimer(ctx.currentProcessingTime()); },
      onTimer(ts, ctx) { fired++; ctx.timers.registerProcessingTimeTimer(ts); },
    }, { name: "ticks" })
    .sinkTo({ kind: "discard", createWriter: async () => ({ write: () => {}, flush: async () => {}, close: async () => {} }) });
  try {
    const client = await env.executeAsync();
    await eventually("timers firing", 60_000, async () => (fired > 10_000 ? true : undefined));
    const before = fired;
    await eventually("more of them, seen from a timer of the event loop", 60_000, async () => (fired > before ? true : undefined));
    await client.cancel();
  } finally {
    await env.close();
  }
});

test("the job that stops registering at MAX_WATERMARK ends, as the warning says", async () => {
  const env = periodic("final-loop-fixed", "streaming", () => {}, true);
  try {
    await env.execute();
  } finally {
    await env.close();
  }
});

test("the watch: quiet up to twice the timers pending plus the margin, then a line each tenfold", () => {
  const lines: string[] = [];
  const watch = new FinalTimerWatch(5, (l) => lines.push(l), "op", 10);
  for (let i = 0; i < 19; i++) watch.firing("k");
  assert.is(lines.length, 0);
  watch.firing("k");
  assert.is(lines.length, 1);
  assert.match(lines[0]!, /^op: 20 event-time timers fired/);
  for (let i = 0; i < 179; i++) watch.firing("k");
  assert.is(lines.length, 1);
  watch.firing("k");
  assert.match(lines[1]!, /^op: 200 event-time timers fired/);
});

test.run();
