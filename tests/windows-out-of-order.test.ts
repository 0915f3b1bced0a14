// Out-of-order watermark mode (asyncState.watermarkMode) with state that takes time to read (the KV
// backend, cold): records that arrived after a watermark run while that watermark's timers still wait for
// earlier records. Each must still see its key's windows as synchronous execution does: fired if the
// watermark passed them. Before, such a record counted as late for a window not yet fired (a late firing
// with it), and the window's timer then fired it again: duplicate results. Strict mode is the reference.
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { outputTag, SlidingEventTimeWindows, Sources, StreamEnvironment, WatermarkStrategy } from "../mod.ts";
import { withServer } from "./helpers/nats-server.ts";

const s = suite("windows in out-of-order watermark mode");
const nats = withServer(s);

interface Reading { sensor: string; ts: number }

/** Readings mostly in order, many up to 600 ms late (within or past the lateness), over 20 sensors. */
function readings(n: number, seed: number): Reading[] {
  let x = seed;
  const rand = () => ((x = (x * 1103515245 + 12345) & 0x7fffffff) / 0x7fffffff);
  return Array.from({ length: n }, (_, i) => ({ sensor: `s${Math.floor(rand() * 20)}`, ts: 10_000 + i * 10 - (rand() < 0.3 ? Math.floor(rand() * 600) : 0) }));
}

async function windowResults(name: string, events: Reading[], watermarkMode: "strict" | "out-of-order"): Promise<string[]> {
  const late = outputTag<Reading>("late");
  const env = StreamEnvironment.create({ name, nats: nats.url, parallelism: 2, stateBackend: "jetstream-kv", mode: "streaming", asyncState: { enabled: true, watermarkMode } }, { log: () => {} });
  try {
    const fired = env.fromSource(Sources.array(events), { watermarks: WatermarkStrategy.boundedOutOfOrderness<Reading>(200, (e) => e.ts).withWatermarkPerRecord() })
      .keyBy((e) => e.sensor)
      .window(SlidingEventTimeWindows.of(400, 200))
      .allowedLateness(150)
      .sideOutputLateData(late)
      .process<string>({ process: (key, c, elements, out) => out.collect(`${key}[${c.window.start},${c.window.end}):${elements.map((e) => e.ts).sort((a, b) => a - b).join(",")}`) });
    return [...await fired.union(fired.getSideOutput(late).map((e) => `late ${e.sensor}@${e.ts}`)).executeAndCollect()].sort();
  } finally {
    await env.close();
  }
}

s("window results and late records in out-of-order mode equal strict mode's, none fired twice with the same contents", async () => {
  const events = readings(3000, 11);
  const strict = await windowResults("ooostrict", events, "strict");
  const outOfOrder = await windowResults("ooomode", events, "out-of-order");
  const repeats = outOfOrder.filter((r, i) => !r.startsWith("late ") && outOfOrder[i - 1] === r);
  assert.equal(repeats.slice(0, 5), [], `${repeats.length} window results fired twice with the same contents`);
  assert.ok(strict.some((r) => r.startsWith("late ")), "the input has records past the lateness");
  assert.equal(outOfOrder, strict);
});

s.run();
