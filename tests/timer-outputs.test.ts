// What a timer's output carries: from an event-time timer, the timer's time as its timestamp; from a
// processing-time timer, no timestamp (as Flink erases it: wall-clock time is no event time). In onTimer,
// ctx.timestamp is the timer's time in either domain (Flink's OnTimerContext.timestamp()) and
// ctx.timeDomain says which kind fired (OnTimerContext.timeDomain()). Both execution modes; a simulated clock.
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { Sources, StreamEnvironment, WatermarkStrategy, type SinkDef } from "../mod.ts";
import { ManualClock } from "../runtime/core/clock.ts";
import { withServer } from "./helpers/nats-server.ts";

const test = suite("timer outputs");
const nats = withServer(test);

for (const asyncEnabled of [true, false]) {
  test(`a processing-time timer's output has no timestamp; an event-time timer's has the timer's (async state ${asyncEnabled ? "on" : "off"})`, async () => {
    const clock = new ManualClock(0);
    const env = StreamEnvironment.create({ name: `timerout${asyncEnabled ? "a" : "s"}`, nats: nats.url, parallelism: 1, stateBackend: "heap", mode: "streaming", asyncState: { enabled: asyncEnabled } }, { clock, log: () => {} });
    const seen: string[] = [];
    const sink: SinkDef<string> = { kind: "seen", createWriter: async () => ({ write: (v: string) => { seen.push(v); }, flush: async () => {}, close: async () => {} }) };
    try {
      env.fromSource(Sources.generator({ ratePerSec: 200, make: (i) => ({ k: "a", ts: 1000 + i }) }), { watermarks: WatermarkStrategy.forMonotonousTimestamps<{ k: string; ts: number }>((e) => e.ts) })
        .keyBy((e) => e.k)
        .process<string>({
          processElement(e, ctx) {
            if (ctx.timeDomain !== undefined) throw new Error(`a record's timeDomain: ${ctx.timeDomain}`);
            if (e.ts === 1000) { ctx.timers.registerProcessingTimeTimer(500); ctx.timers.registerEventTimeTimer(1005); }
          },
          onTimer(ts, ctx) { ctx.collect(`${ctx.timeDomain} ${ts} ctx.timestamp=${ctx.timestamp}`); },
        })
        .process<string>({ processElement(v, ctx) { ctx.collect(`${v} out.ts=${ctx.timestamp}`); } })
        .sinkTo(sink);
      const client = await env.executeAsync();
      const deadline = Date.now() + 60_000;
      while (seen.length < 2 && Date.now() < deadline) {
        clock.advance(100);
        await new Promise((r) => setTimeout(r, 50));
      }
      assert.equal(seen.sort(), ["event 1005 ctx.timestamp=1005 out.ts=1005", "processing 500 ctx.timestamp=500 out.ts=undefined"]);
      await client.cancel();
    } finally {
      await env.close();
    }
  });
}

test.run();
