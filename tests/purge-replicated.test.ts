// Removing one subject's messages from a replicated stream must not remove others' on a replica that
// restarts: nats-server 2.9.10 replays a subject-filtered purge as a purge of the whole stream up to that
// point when a replica recovers its log (state/backends/jetstream-purge.ts). weir's checkpoint bucket,
// staging, changelog and cache streams remove messages this way; a lost `latest` or staged output was the
// result. Real three-node cluster on loopback; each server SIGKILLed and restarted on its store in turn.
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { connect } from "@nats-io/transport-node";
import { jetstream, jetstreamManager } from "@nats-io/jetstream";
import { startCluster } from "./helpers/nats-cluster.ts";
import { purgeSubject } from "../state/backends/jetstream-purge.ts";
import { waitForStreamLeader } from "../state/backends/jetstream-retry.ts";

const s = suite("purge on a replicated stream");

s("R3: a subject's messages removed, then every server restarted in turn: every replica keeps the other subject's", async () => {
  const cluster = await startCluster(3);
  const nc = await connect({ servers: [...cluster.urls], maxReconnectAttempts: -1, reconnectTimeWait: 200 });
  try {
    const jsm = await jetstreamManager(nc);
    await jsm.streams.add({ name: "P", subjects: ["p.>"], num_replicas: 3 });
    await waitForStreamLeader(() => jsm.streams.info("P"));
    const js = jetstream(nc);
    for (let i = 0; i < 20; i++) {
      await js.publish("p.keep", String(i));
      await js.publish("p.drop", String(i));
    }
    // The first 15 of p.drop (below its 16th message's sequence, 32), then the rest.
    assert.is(await purgeSubject(jsm, "P", "p.drop", 32, 3), 15, "the first 15 of p.drop deleted");
    assert.is(await purgeSubject(jsm, "P", "p.drop", undefined, 3), 5, "then the other 5");
    assert.is((await jsm.streams.info("P")).state.messages, 20);
    for (let i = 0; i < 3; i++) {
      await cluster.kill(i);
      await cluster.restart(i);
      const views = (await cluster.streamViews()).filter((l) => / P messages /.test(l));
      assert.is(views.length, 3, `every server describes P: ${views.join("; ")}`);
      // At least the kept subject's 20 (with the whole-stream replay, a restarted replica held 0). A restarted
      // replica was once seen still holding the 20 deleted ones too (40): deletes not reapplied, nothing lost.
      for (const v of views) assert.ok(Number(/ P messages (\d+) last seq 40 /.exec(v)?.[1] ?? -1) >= 20, `after restarting s${i}: ${views.join("; ")}`);
    }
  } finally {
    await nc.close().catch(() => {});
    await cluster.stop();
  }
});

s.run();
