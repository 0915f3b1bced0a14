// A graceful stop while periodic checkpoints keep coming takes its final checkpoint after the one in
// flight, without failing an attempt on "a checkpoint is already in progress".
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { Sinks, Sources, StreamEnvironment } from "../mod.ts";
import { withServer } from "./helpers/nats-server.ts";
import { eventually } from "./helpers/cli.ts";

const test = suite("graceful stop during checkpoints");
const nats = withServer(test);

test("stopping while checkpoints are in flight: the final checkpoint waits its turn, no scary log", async () => {
  const logs: string[] = [];
  for (let run = 0; run < 6; run++) {
    const env = StreamEnvironment.create({ name: "busystop", nats: nats.url, parallelism: 2, checkpointIntervalMs: 10 }, { log: (m) => logs.push(m) });
    try {
      env.fromSource(Sources.generator({ ratePerSec: 5000, make: (i) => ({ k: `k${i % 50}`, i }) }), { name: "gen" })
        .keyBy((e) => e.k)
        .reduce((a, b) => ({ k: a.k, i: a.i + b.i }), { name: "sum" })
        .sinkTo(Sinks.nats({ subject: "busystop.out" }));
      const client = await env.executeAsync();
      await eventually("a few checkpoints", 60_000, () => ((client.status().checkpoints?.completed ?? 0) >= 3 + run ? true : undefined));
      const result = await client.stop();
      assert.is(result.state, "stopped");
    } finally {
      await env.close();
    }
  }
  assert.equal(logs.filter((l) => /already in progress|final checkpoint failed/.test(l)), [], logs.join("\n"));
});

test.run();
