// A commit of the exactly-once JetStream sink that fails must fail the job at once, visibly, even when no
// further record arrives: restarts from the last checkpoint per the restart strategy, `weir status` shows
// the failure meanwhile, and once the attempts are used up `weir run` exits non-zero with one line naming
// the sink and the cause.
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { connect } from "@nats-io/transport-node";
import { jetstreamManager } from "@nats-io/jetstream";
import { withServer } from "./helpers/nats-server.ts";
import { createStream, publishAll } from "./helpers/streams.ts";
import { eventually, startWeir, within } from "./helpers/cli.ts";
import { fetchStatus, formatStatus } from "../runtime/cli/commands/control.ts";

const test = suite("exactly-once sink commit failure");
const nats = withServer(test);

test("a failing commit on a quiet input fails the job with the sink and the cause", async () => {
  const nc = await connect({ servers: nats.url });
  const run = startWeir(["run", "tests/fixtures/jobs/failing-sink.ts", "--nats", nats.url, "--quiet"]);
  try {
    // The sink's subject belongs to another stream: its stream cannot be created, nothing can be published.
    await createStream(nc, "OTHER", ["taken.>"]);
    await createStream(nc, "FAILSINK_IN", ["failsink.in"]);
    await publishAll(nc, [["failsink.in", "a"], ["failsink.in", "b"], ["failsink.in", "c"]]);
    // Then nothing more arrives. While it restarts, its status (what `weir status` prints) names the failure.
    const shown = await eventually("the status showing the sink failure", 60_000, async () => {
      if (run.child.exitCode !== null) throw new Error(`weir run ended first: ${run.stderr().slice(-600)}`);
      const s = await fetchStatus(nc, "failsink");
      return s && s.failures.length > 0 ? s : undefined;
    });
    assert.match(shown.failures[0]!.error, /sink "out".*checkpoint \d+ failed: .*FAILSINK_OUT/);
    assert.match(formatStatus(shown).split("\n")[0]!, /failure: sink "out"/, "the status line shows it");
    const exit = await within(run.exited, 90_000);
    assert.ok(exit, `weir run ended by itself once the restart attempts were used up: ${run.stderr().slice(-600)}`);
    assert.is.not(exit.code, 0, "non-zero exit");
    const last = exit.stderr.trimEnd().split("\n").at(-1)!;
    assert.match(last, /^weir: sink "out" \(Sinks\.jetstream, subtask 0\): committing the output of checkpoint \d+.* failed: .*stream "FAILSINK_OUT"/, `one line naming the sink and the cause: ${last}`);
    assert.match(exit.stderr, /restarting \(restart 1, fixed-delay/, "it restarted from its last checkpoint first");
    const jsm = await jetstreamManager(nc);
    assert.is((await jsm.streams.info("OTHER")).state.messages, 0, "nothing was misrouted into the other stream");
  } finally {
    if (run.child.exitCode === null) run.child.kill("SIGKILL");
    await nc.close();
  }
});

test.run();
