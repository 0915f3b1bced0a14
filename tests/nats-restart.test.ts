// A NATS server restart mid-job loses nothing and duplicates nothing: a keyed count with an exactly-once
// JetStream sink and continuous input, its nats-server SIGKILLed and started again on the same port and
// store several times; the output must equal the reference (every key's counts 1..n, each once), and the
// job must produce output again after each restart.
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { RestartableServer } from "./helpers/nats-server.ts";
import { runWithServerRestarts } from "./helpers/server-restarts.ts";

const s = suite("NATS server restarts");

// Six outages here (WEIR_RESTART_TEST_COUNT for more); the many-fault run is `npm run bench restarts` (20).
const RESTARTS = Number(process.env.WEIR_RESTART_TEST_COUNT ?? 6);

s(`SIGKILL and restart the nats-server ${RESTARTS} times under a running keyed job: output exact`, async () => {
  const server = await RestartableServer.start();
  try {
    const lines: string[] = [];
    const r = await runWithServerRestarts({
      server, restarts: RESTARTS, downMs: 1500, ratePerSec: 2000,
      checkpointIntervalMs: 500, waitMs: 30_000,
      log: (l) => { lines.push(l); if (!l.startsWith("  [job]")) process.stderr.write(`${l}\n`); },
    });
    const summary = `published ${r.published}, outputs ${r.outputs}, lost ${r.lost}, duplicated ${r.duplicated}, job restarts ${r.jobRestarts}, state ${r.jobState}`;
    process.stderr.write(`${summary}\nprogress after each restart (ms): ${r.progressMs.join(", ")}\n`);
    const trail = lines.filter((l) => !l.startsWith("  [job]")).concat(lines.filter((l) => l.startsWith("  [job]")).slice(-15)).join("\n");
    assert.is(r.lost, 0, `nothing lost: ${summary}\n${trail}`);
    assert.is(r.duplicated, 0, `nothing duplicated: ${summary}\n${trail}`);
    assert.is(r.outputs, r.published, `one output per input: ${summary}`);
    assert.ok(r.progressMs.every((ms) => ms !== undefined), `output again after every restart: ${r.progressMs.join(", ")}`);
  } finally {
    await server.stop();
  }
});

s.run();
