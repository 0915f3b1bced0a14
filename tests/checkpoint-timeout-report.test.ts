// A checkpoint that times out says why: for each subtask that did not acknowledge, its state, what its run
// loop waits on and its channels (frames sent, granted, received), so a stall can be told apart from a slow
// snapshot without a debugger. Real server; a user function that never returns stands in for the stall.
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { Sinks, Sources, StreamEnvironment } from "../mod.ts";
import { connect } from "@nats-io/transport-node";
import { withServer } from "./helpers/nats-server.ts";

const s = suite("checkpoint timeout report");
const nats = withServer(s);

s("a subtask stuck in a user function: the timeout names it, what it waits on, and the source held back by credit", async () => {
  const lines: string[] = [];
  const env = StreamEnvironment.create({ name: "stuck", nats: nats.url, parallelism: 1, stateBackend: "heap", checkpointIntervalMs: 200, checkpointTimeoutMs: 1500, tolerableCheckpointTimeouts: 10 }, { log: (m) => lines.push(m) });
  let release: (() => void) | undefined;
  const stuck = new Promise<void>((r) => { release = r; });
  env.fromSource(Sources.generator({ make: (i) => ({ k: `k${i % 10}`, i }) }), { uid: "gen" })
    .keyBy((r) => r.k)
    .process<number>({
      async processElement(r, ctx) {
        if (r.i === 5000) await stuck;
        ctx.collect(r.i);
      },
    }, { uid: "proc" })
    .sinkTo(Sinks.nats({ subject: "stuck.out" }), { uid: "out" });
  const client = await env.executeAsync();
  try {
    const deadline = Date.now() + 30_000;
    // The first checkpoint's barrier left the source before the stall; a later one's waits behind frames without credit.
    const reported = (who: string) => lines.some((l) => new RegExp(`^checkpoint \\d+: ${who}#0 is `).test(l));
    while (Date.now() < deadline && !(reported("proc") && reported("gen"))) await new Promise((r) => setTimeout(r, 100));
    const report = lines.filter((l) => /^checkpoint \d+: /.test(l));
    const proc = report.find((l) => l.includes("proc#0 is "));
    assert.ok(proc, `the timeout reports the stuck subtask: ${lines.slice(-10).join("\n")}`);
    assert.match(proc!, /waiting \d+ ms for a frame to be processed/);
    assert.match(proc!, /records in flight/);
    assert.match(proc!, /input: Source: generator#0 received \d+ consumed \d+ granted \d+/);
    const gen = report.find((l) => l.includes("gen#0 is "));
    assert.ok(gen, `and the source: ${report.join("\n")}`);
    assert.match(gen!, /waiting \d+ ms for credit for its output frames, output without credit: .* sent \d+ of \d+ granted, \d+ waiting/);
  } finally {
    release?.();
    await client.cancel().catch(() => {});
    await env.close();
  }
});

s("a job whose checkpoints time out (none tolerated, the default) restarts from its last checkpoint and goes on", async () => {
  const lines: string[] = [];
  const env = StreamEnvironment.create({ name: "stalled", nats: nats.url, parallelism: 1, stateBackend: "heap", checkpointIntervalMs: 200, checkpointTimeoutMs: 1500, restartStrategy: { attempts: 3, delayMs: 100 } }, { log: (m) => lines.push(m) });
  let release: (() => void) | undefined;
  const stuck = new Promise<void>((r) => { release = r; });
  let stalls = 0;
  env.fromSource(Sources.generator({ make: (i) => ({ k: `k${i % 10}`, i }) }), { uid: "gen" })
    .keyBy((r) => r.k)
    .process<number>({
      // Stuck the first time only: the record replayed after the restart goes through.
      async processElement(r, ctx) {
        if (r.i === 5000 && stalls++ === 0) await stuck;
        ctx.collect(r.i);
      },
    }, { uid: "proc" })
    .sinkTo(Sinks.nats({ subject: "stalled.out" }), { uid: "out" });
  const nc = await connect({ servers: nats.url });
  // Key k0's records after the stuck one (5000) come out only once the job restarted.
  let highestOfStuckKey = -1;
  const sub = nc.subscribe("stalled.out", { callback: (_e, m) => { const i = Number(m.string()); if (i % 10 === 0) highestOfStuckKey = Math.max(highestOfStuckKey, i); } });
  const client = await env.executeAsync();
  try {
    const deadline = Date.now() + 60_000;
    while (Date.now() < deadline && highestOfStuckKey < 6000) await new Promise((r) => setTimeout(r, 100));
    const line = lines.find((l) => /checkpoint\(s\) in a row timed out/.test(l));
    assert.ok(line, `the stall is named: ${lines.slice(-8).join("\n")}`);
    assert.match(line!, /1 checkpoint\(s\) in a row timed out with nothing completed \(tolerableCheckpointTimeouts: 0\): the job restarts from its last checkpoint/);
    assert.is(client.status().restarts, 1, "one restart");
    assert.ok(highestOfStuckKey >= 6000, `the stuck key's output goes on after the restart (highest ${highestOfStuckKey})`);
  } finally {
    release?.();
    sub.unsubscribe();
    await nc.close();
    await client.cancel().catch(() => {});
    await env.close();
  }
});

s.run();
