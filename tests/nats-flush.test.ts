// A flush asked for while the connection drains settles: resolved, or rejected once the connection is
// closed. The client's own flush() can wait for ever there (its PING went out after drain's last one), and
// a job stopping while its environment closed never ended (tests/start-cancel). Whether a try hits that
// window is a matter of timing, so it is tried many times at different points of the drain.
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { connect } from "@nats-io/transport-node";
import { flushConnection } from "../runtime/nats/flush.ts";
import { withServer } from "./helpers/nats-server.ts";
import { within } from "./helpers/cli.ts";

const test = suite("flushing a draining connection");
const nats = withServer(test);
const TRIES = 300;

test("a flush during drain settles once the connection is closed", async () => {
  const pending: number[] = [];
  for (let i = 0; i < TRIES; i++) {
    const nc = await connect({ servers: nats.url });
    try {
      nc.subscribe("weir.test.flush", { callback: () => {} });
      await nc.flush();
      const drained = nc.drain();
      // Ask at a different point of the drain each time: before, during and after its final PING.
      for (let n = 0; n < i % 30; n++) await new Promise((r) => setImmediate(r));
      const flushed = flushConnection(nc).then(() => "resolved", () => "rejected");
      await drained;
      if ((await within(flushed, 2_000)) === undefined) pending.push(i);
    } finally {
      if (!nc.isClosed()) await nc.close();
    }
  }
  assert.equal(pending, [], `flushes left pending after the connection closed (tries ${pending.join(", ")})`);
});

test.run();
