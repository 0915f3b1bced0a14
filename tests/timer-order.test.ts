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

for (const mode of ["streaming", "batch"] as const) {
  test(`a timer at Infinity or past the largest safe integer fires at the end of input (${mode}), as Flink's Long.MAX_VALUE`, async () => {
    const env = StreamEnvironment.create({ name: `timer-end-${mode}`, nats: nats.url, parallelism: 1, stateBackend: "heap", mode }, { log: () => {} });
    try {
      const out = await env.fromSource(Sources.array<Ev>([{ k: "a", ts: 1 }, { k: "b", ts: 2 }]), { watermarks: WatermarkStrategy.forMonotonousTimestamps<Ev>((e) => e.ts) })
        .keyBy((e) => e.k)
        .process<string>({
          processElement(e, c) { c.timers.registerEventTimeTimer(e.k === "a" ? Number.POSITIVE_INFINITY : Number.MAX_VALUE); },
          onTimer(_ts, c) { c.collect(`${c.key}`); },
        })
        .executeAndCollect();
      assert.equal([...out].sort(), ["a", "b"]);
    } finally {
      await env.close();
    }
  });
}

test("a timer time that is not a number is refused where it is registered, naming the method (a string was stored and refused every restore)", async () => {
  const env = StreamEnvironment.create({ name: "timer-string", nats: nats.url, parallelism: 1, stateBackend: "heap", mode: "streaming" }, { log: () => {} });
  try {
    const error = await env.fromSource(Sources.array<Ev>([{ k: "a", ts: 1 }]), { watermarks: WatermarkStrategy.forMonotonousTimestamps<Ev>((e) => e.ts) })
      .keyBy((e) => e.k)
      .process<string>({ processElement(_e, c) { c.timers.registerEventTimeTimer("5000" as unknown as number); } })
      .executeAndCollect().then(() => "finished", (e: Error) => e.message);
    assert.match(error, 'registerEventTimeTimer: expected a time in ms (a number), got "5000" (string)');
  } finally {
    await env.close();
  }
});

test("a timer at ctx.timestamp + delay for a record without a timestamp names NaN and why, not \"null (number)\"", async () => {
  const env = StreamEnvironment.create({ name: "timer-nan", nats: nats.url, parallelism: 1, stateBackend: "heap", mode: "streaming" }, { log: () => {} });
  try {
    const error = await env.fromSource(Sources.array<Ev>([{ k: "a", ts: 1 }]))
      .keyBy((e) => e.k)
      .process<string>({ processElement(_e, c) { c.timers.registerEventTimeTimer(c.timestamp! + 10); } })
      .executeAndCollect().then(() => "finished", (e: Error) => e.message);
    assert.match(error, "registerEventTimeTimer: expected a time in ms, got NaN (ctx.timestamp is undefined for records without a timestamp: give the source a WatermarkStrategy)");
  } finally {
    await env.close();
  }
});

test.run();
