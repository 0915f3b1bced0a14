// keyBy().countWindow(size[, slide]), Flink's count windows: tumbling ones fire every `size` records of a
// key and start over, sliding ones every `slide` records over the key's last `size`; a window not full at
// the end of input never fires. The same results in streaming and batch mode, on the heap and on KV.
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { Sources, StreamEnvironment, type JobOptions } from "../mod.ts";
import { withServer } from "./helpers/nats-server.ts";

const test = suite("count windows");
const nats = withServer(test);

interface Sale { shop: string; n: number }
/** Seven sales per shop, numbered 1..7 within each shop, interleaved. */
const sales: Sale[] = Array.from({ length: 14 }, (_, i) => ({ shop: i % 2 === 0 ? "a" : "b", n: Math.floor(i / 2) + 1 }));

let jobs = 0;
async function run<O>(options: Partial<JobOptions>, build: (env: StreamEnvironment) => Promise<O[]>): Promise<O[]> {
  const env = StreamEnvironment.create({ name: `countwin${jobs++}`, nats: nats.url, parallelism: 2, ...options }, { log: () => {} });
  try {
    return await build(env);
  } finally {
    await env.close();
  }
}

for (const options of [{ mode: "streaming", stateBackend: "heap" }, { mode: "batch", stateBackend: "heap" }, { mode: "streaming", stateBackend: "jetstream-kv" }] as const) {
  const label = `${options.mode}, ${options.stateBackend}`;

  test(`tumbling reduce: a window every 3 records of a shop; the 7th, alone, never fires (${label})`, async () => {
    const out = await run(options, (env) => env.fromSource(Sources.array(sales)).keyBy((s) => s.shop)
      .countWindow(3)
      .reduce((x, y) => ({ shop: x.shop, n: x.n + y.n }))
      .executeAndCollect());
    assert.equal(out.map((s) => `${s.shop}:${s.n}`).sort(), ["a:15", "a:6", "b:15", "b:6"]);
  });

  test(`sliding aggregate: every 2 records, the sum of a shop's last 3 (${label})`, async () => {
    const out = await run(options, (env) => env.fromSource(Sources.array(sales)).keyBy((s) => s.shop)
      .countWindow(3, 2)
      .aggregate<{ shop: string; sum: number }, string>({
        createAccumulator: () => ({ shop: "", sum: 0 }),
        add: (s, acc) => ({ shop: s.shop, sum: acc.sum + s.n }),
        getResult: (acc) => `${acc.shop}:${acc.sum}`,
      })
      .executeAndCollect());
    // 1+2, 2+3+4, 4+5+6 for each shop; the 7th record starts a window that never fills its slide.
    assert.equal(out.sort(), ["a:15", "a:3", "a:9", "b:15", "b:3", "b:9"]);
  });

  test(`tumbling process: the window's records in arrival order, the key and the global window (${label})`, async () => {
    const out = await run(options, (env) => env.fromSource(Sources.array(sales)).keyBy((s) => s.shop)
      .countWindow(2)
      .process<string>({
        process(shop, { window }, records, o) {
          o.collect(`${shop} ${records.map((r) => r.n).join(",")} ${window.start < 0 && window.end > 1e15 ? "global" : JSON.stringify(window)}`);
        },
      })
      .executeAndCollect());
    assert.equal(out.sort(), ["a 1,2 global", "a 3,4 global", "a 5,6 global", "b 1,2 global", "b 3,4 global", "b 5,6 global"]);
  });
}

test("countWindow refuses a size or slide that is not a positive integer, naming it", async () => {
  const env = StreamEnvironment.create({ name: "countwinbad", nats: nats.url }, { log: () => {} });
  try {
    const keyed = env.fromSource(Sources.array(sales)).keyBy((s) => s.shop);
    assert.throws(() => keyed.countWindow(0), /countWindow\(\): size must be a positive integer, got 0/);
    assert.throws(() => keyed.countWindow(3, 1.5), /countWindow\(\): slide must be a positive integer, got 1\.5/);
    assert.throws(() => (keyed.countWindow as (size?: number) => unknown)(), /countWindow\(\): size must be a positive integer, got undefined/);
  } finally {
    await env.close();
  }
});

test.run();
