// A job name already running on the NATS server, started again another way: a program's own
// executeAsync() beside `weir run` workers (or a `weir run` beside such a program) ran a second copy over
// the same input, state and checkpoints, without a word (both restored the same checkpoint; the first
// one's checkpoints then failed). Now the second launch is refused in one line.
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { Sinks, Sources, StreamEnvironment } from "../mod.ts";
import { withServer } from "./helpers/nats-server.ts";
import { runWeir } from "./helpers/cli.ts";

const test = suite("a job name already running");
const nats = withServer(test);
const JOB = "tests/fixtures/jobs/secured-counts.ts";

function program(): StreamEnvironment {
  const env = StreamEnvironment.create({ name: "twice", nats: nats.url, parallelism: 1, checkpointIntervalMs: 500 }, { log: () => {} });
  env.fromSource(Sources.generator({ ratePerSec: 20, make: (i) => i })).sinkTo(Sinks.nats({ subject: "twice.out" }));
  return env;
}

test("a second program, or a weir run worker, of a job a program runs: refused in one line; the first runs on", async () => {
  const first = program();
  const second = program();
  try {
    const client = await first.executeAsync();
    const err = await second.executeAsync().then(() => undefined, (e: Error) => e);
    assert.ok(err, "the second program is refused");
    assert.match(err!.message, "job twice is already running on this NATS server: it runs in another program");
    const cli = await runWeir(["run", JOB, "--nats", nats.url], { env: { SECURED_JOB: "twice" }, deadlineMs: 30_000 });
    assert.is.not(cli.code, 0, cli.stdout);
    const lines = cli.stderr.trim().split("\n");
    assert.is(lines.length, 1, cli.stderr);
    assert.match(lines[0]!, "weir: job twice is already running on this NATS server: it runs in another program");
    assert.is(client.status().state, "running");
  } finally {
    await second.close();
    await first.close();
  }
});

test.run();
