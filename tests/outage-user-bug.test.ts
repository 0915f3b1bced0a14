// A failure just after a NATS outage is put down to the outage (a quick restart, not counted) only when the
// outage can explain it: a user function's own bug there counts against the restart strategy and backs
// off as anywhere else. A real nats-server is SIGKILLed and started again under the job; then its map
// function starts throwing within the grace period after the reconnect.
import { test } from "uvu";
import * as assert from "uvu/assert";
import { Sources, StreamEnvironment, type SinkDef } from "../mod.ts";
import { RestartableServer } from "./helpers/nats-server.ts";
import { eventually, within } from "./helpers/cli.ts";

const discard: SinkDef<number> = { kind: "discard", createWriter: async () => ({ write: () => {}, flush: async () => {}, close: async () => {} }) };

test("a user function's bug right after a reconnect counts against the restart strategy", async () => {
  const server = await RestartableServer.start();
  const lines: string[] = [];
  let throwNow = false;
  const env = StreamEnvironment.create({
    name: "outagebug", nats: server.url, parallelism: 1, stateBackend: "heap", checkpointIntervalMs: 200,
    restartStrategy: { type: "fixed-delay", attempts: 1, delayMs: 0 },
  }, { log: (l) => { lines.push(l); } });
  try {
    env.fromSource(Sources.generator({ ratePerSec: 100, make: (i) => i }))
      .map((i) => { if (throwNow) throw new Error("a bug in the map function"); return i; })
      .sinkTo(discard);
    const client = await env.executeAsync();
    await eventually("a first checkpoint", 30_000, () => ((client.status().checkpoints?.completed ?? 0) > 0 ? true : undefined));
    await server.kill();
    await eventually("the disconnect seen", 30_000, () => (lines.some((l) => /NATS connection to \S+ lost/.test(l)) ? true : undefined));
    const completedInOutage = client.status().checkpoints?.completed ?? 0;
    await server.restart();
    // Running again with the connection back (after a restart, or through the outage when no frame was
    // lost: tests/nats-disconnect) and a checkpoint since, well within the outage's grace period.
    const restartsBefore = await eventually("the job running again", 60_000, () => {
      const s = client.status();
      const back = lines.some((l) => /NATS connection back/.test(l));
      return back && s.state === "running" && (s.checkpoints?.completed ?? 0) > completedInOutage ? s.restarts : undefined;
    });
    throwNow = true;
    const failure = await within(client.result().then((r) => `ended ${r.state}`, (e: Error) => e.message), 60_000);
    assert.ok(failure !== undefined, `the job did not fail within 60 s: ${lines.slice(-10).join("\n")}`);
    assert.match(failure!, /a bug in the map function/);
    // One restart for the bug (the strategy's one attempt), then the job fails: not a quick restart after
    // another while the outage's grace period lasts.
    assert.is(client.status().restarts - restartsBefore, 1, lines.filter((l) => /restart/i.test(l)).join("\n"));
  } finally {
    await env.close();
    await server.stop();
  }
});

test.run();
