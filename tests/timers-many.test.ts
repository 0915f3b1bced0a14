// Many processing-time timers due at once (20,000 keys, one timer each, all at the same time): every one
// fires, in both execution modes, and the job goes on. Firing them recursed once per timer and overflowed
// the stack, which killed the process. A simulated clock makes them due together.
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { Sources, StreamEnvironment, type SinkDef } from "../mod.ts";
import { ManualClock } from "../runtime/core/clock.ts";
import { withServer } from "./helpers/nats-server.ts";

const test = suite("many due timers");
const nats = withServer(test);
const KEYS = 20_000;

async function until(what: string, check: () => boolean): Promise<void> {
  const deadline = Date.now() + 120_000;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`${what}: not within 120 s`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

for (const asyncEnabled of [true, false]) {
  test(`${KEYS} processing-time timers due together all fire (async state ${asyncEnabled ? "on" : "off"})`, async () => {
    const clock = new ManualClock(0);
    const env = StreamEnvironment.create({ name: `manytimers${asyncEnabled ? "a" : "s"}`, nats: nats.url, parallelism: 1, stateBackend: "heap", mode: "streaming", asyncState: { enabled: asyncEnabled } }, { clock, log: () => {} });
    const fired = { n: 0 };
    const count: SinkDef<number> = { kind: "count", createWriter: async () => ({ write: () => { fired.n++; }, flush: async () => {}, close: async () => {} }) };
    try {
      env.fromSource(Sources.generator({ ratePerSec: 50_000, make: (i) => ({ k: i }) }))
        .keyBy((e) => e.k)
        .process<number>({
          processElement(e, ctx) { if (e.k < KEYS) ctx.timers.registerProcessingTimeTimer(1000); },
          onTimer(_ts, ctx) { ctx.collect(1); },
        })
        .sinkTo(count);
      const client = await env.executeAsync();
      // The keyed operator (not only the source) has seen every key: all timers are registered.
      await until("the keys registered their timers", () => client.status().subtasks.some((s) => s.id.startsWith("keyedprocess") && s.recordsIn >= KEYS));
      clock.advance(1000);
      await until("every timer fired", () => fired.n >= KEYS || client.status().state !== "running");
      assert.is(fired.n, KEYS);
      assert.is(client.status().state, "running");
      await client.cancel();
    } finally {
      await env.close();
    }
  });
}

test.run();
