// Event-time timers fire in time order per key, also one that an onTimer registers while a later timer
// of the same key is already due (Flink's timer queue fires them one after another). In async execution
// the later timer used to be handed to the controller before the earlier one existed, and fired first.
import { suite } from "uvu";
import * as assert from "uvu/assert";
import * as t from "io-ts";
import { Sources, StreamEnvironment, WatermarkStrategy, valueState } from "../mod.ts";
import { withServer } from "./helpers/nats-server.ts";

const test = suite("timer order");
const nats = withServer(test);
const seen = valueState("seen", t.number);

interface Ev { k: string; ts: number }

for (const mode of ["async", "sync", "batch"] as const) {
  test(`a timer registered in onTimer before a due one fires first (${mode})`, async () => {
    const env = StreamEnvironment.create({
      name: `timer-order-${mode}`, nats: nats.url, parallelism: 1, stateBackend: "heap",
      mode: mode === "batch" ? "batch" : "streaming", asyncState: { enabled: mode !== "sync" },
    }, { log: () => {} });
    try {
      // Key a gets timers at 10 and 20; key b's records carry the watermark past both.
      const events: Ev[] = [{ k: "a", ts: 1 }, { k: "b", ts: 100 }, { k: "b", ts: 1000 }];
      const out = await env.fromSource(Sources.array(events), { watermarks: WatermarkStrategy.forMonotonousTimestamps<Ev>((e) => e.ts).withWatermarkPerRecord() })
        .keyBy((e) => e.k)
        .process<string>({
          processElement(e, c) {
            if (e.k === "a") { c.timers.registerEventTimeTimer(10); c.timers.registerEventTimeTimer(20); }
          },
          async onTimer(ts, c) {
            // A state read first: the timer at 20 is due and waiting while this one is suspended.
            await c.state(seen).update(((await c.state(seen).value()) ?? 0) + 1);
            if (ts === 10) { c.timers.registerEventTimeTimer(15); c.timers.registerEventTimeTimer(12); }
            c.collect(`${c.key}@${ts}`);
          },
        })
        .executeAndCollect();
      assert.equal(out, ["a@10", "a@12", "a@15", "a@20"]);
    } finally {
      await env.close();
    }
  });
}

test.run();
