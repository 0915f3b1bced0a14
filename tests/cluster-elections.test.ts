// What weir does while a three-node JetStream cluster (nats-server 2.9.10) recovers from losing one
// server, part by part, on real servers: the state pipe's writes and reads go through the election of the
// bucket's stream leader; JetStream source lanes open although the server places some of their consumers
// on the lost server; the job's connection watch puts failures down to the loss of a server it was not
// connected to. The whole job through server losses is tests/cluster-failover.test.ts.
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { connect, type NatsConnection } from "@nats-io/transport-node";
import { jetstream, jetstreamManager, type JsMsg } from "@nats-io/jetstream";
import { startCluster, type NatsCluster } from "./helpers/nats-cluster.ts";
import { within } from "./helpers/cli.ts";
import { ensureStateBucket } from "../state/backends/jetstream-kv/open.ts";
import { KvPipe } from "../state/backends/jetstream-kv/pipe.ts";
import { ConsumerLane } from "../runtime/sources/jetstream-lane.ts";
import { ConnectionWatch } from "../actors/job/connection-watch.ts";
import { systemClock } from "../runtime/core/clock.ts";

const s = suite("cluster elections");
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const encoder = new TextEncoder();
const decoder = new TextDecoder();

let cluster: NatsCluster;
s.before.each(async () => { cluster = await startCluster(3); });
s.after.each(async () => { await cluster.stop(); });

/** Index of the server leading `stream` (its replicas are named s0..s2 by the helper). */
async function streamLeader(nc: NatsConnection, stream: string): Promise<number> {
  const deadline = Date.now() + 30_000;
  for (;;) {
    const leader = (await (await jetstreamManager(nc)).streams.info(stream).catch(() => undefined))?.cluster?.leader;
    if (leader && /^s\d+$/.test(leader)) return Number(leader.slice(1));
    if (Date.now() > deadline) throw new Error(`stream ${stream} has no leader within 30 s`);
    await sleep(100);
  }
}

/**
 * An R3 state bucket and a pipe to it connected to a server that is not its stream leader: the job's
 * connection is not the one lost when the leader is (that is a restart).
 */
async function pipeAwayFromLeader(bucket: string, options: ConstructorParameters<typeof KvPipe>[2]): Promise<{ nc: NatsConnection; pipe: KvPipe; leader: number }> {
  const first = await connect({ servers: cluster.urls[0]! });
  let leader: number;
  try {
    await ensureStateBucket(first, bucket, 3);
    leader = await streamLeader(first, `KV_${bucket}`);
  } finally {
    await first.close();
  }
  const nc = await connect({ servers: cluster.urls[(leader + 1) % 3]!, noRandomize: true });
  return { nc, pipe: new KvPipe(nc, bucket, options), leader };
}

s("state pipe: puts and leader reads issued right after the bucket's stream leader is SIGKILLed all succeed", async () => {
  const { nc, pipe, leader } = await pipeAwayFromLeader("elect_state", { getWindow: 64, writeWindow: 64, timeoutMs: 2000, leaderReads: true });
  try {
    await Promise.all(Array.from({ length: 20 }, (_, i) => pipe.put(`k${i}`, encoder.encode(`before-${i}`))));
    await cluster.kill(leader);
    // No leader for seconds now: puts find no responder, reads get no answer or "temporarily unavailable".
    const puts = await Promise.allSettled(Array.from({ length: 20 }, (_, i) => pipe.put(`k${i}`, encoder.encode(`after-${i}`))));
    const failed = puts.filter((p) => p.status === "rejected").map((p) => String((p as PromiseRejectedResult).reason));
    assert.equal(failed, [], "every put went through the election");
    const values = await Promise.all(Array.from({ length: 20 }, (_, i) => pipe.get(`k${i}`)));
    assert.equal(values.map((v) => (v ? decoder.decode(v) : v)), Array.from({ length: 20 }, (_, i) => `after-${i}`));
    assert.ok(pipe.retries > 0, "the election was actually met (requests were sent again)");
  } finally {
    pipe.close();
    await nc.close();
  }
});

for (const advisory of [true, false]) {
  s(`state pipe: requests in flight when the bucket's stream leader is SIGKILLed are sent again ${advisory ? "once a new leader is elected" : "after the servers changed, the advisory missed"}, not after their timeout`, async () => {
    // A timeout far beyond the test's deadline: only the leader-elected advisory (or, without it, the
    // client's report that the servers changed) can save what was in flight.
    // Its retry budget as long as the test's deadline: what is checked is what sends requests again, not
    // how long an election takes (once in a full `npm test`, puts still found no responder after the
    // default 30 s budget and failed, as a job's would before it restarts from its checkpoint).
    const { nc, pipe, leader } = await pipeAwayFromLeader(`elect_inflight_${advisory}`, { getWindow: 256, writeWindow: 256, timeoutMs: 600_000, retryBudgetMs: 90_000, leaderReads: true });
    // As for a user whose permissions leave out JetStream's advisories, or an advisory lost on the way.
    if (!advisory) (pipe as unknown as { elections: { unsubscribe(): void } }).elections.unsubscribe();
    try {
      let stop = false;
      let written = 0;
      let failure: unknown;
      // Puts keep flowing so that some are in flight at the kill.
      const writer = (async () => {
        for (let round = 0; !stop; round++) {
          await Promise.all(Array.from({ length: 200 }, (_, i) => pipe.put(`k${i}`, encoder.encode(`${round}`))));
          written += 200;
        }
      })().catch((e: unknown) => { failure = e; stop = true; });
      while (written < 2000 && failure === undefined) await sleep(10);
      await cluster.kill(leader);
      const deadline = Date.now() + 90_000;
      const before = written;
      // Progress again (the round in flight at the kill completed), within a deadline far below the timeout.
      const killedAt = Date.now();
      while (written <= before + 200 && Date.now() < deadline && failure === undefined) await sleep(50);
      stop = true;
      assert.is(failure, undefined, `a put failed ${Math.round((Date.now() - killedAt) / 1000)} s after the kill: ${String(failure)}`);
      const settled = (await within(writer.then(() => "done"), Math.max(0, deadline - Date.now()))) ?? "stuck";
      assert.is(settled, "done", `puts in flight at the kill still unanswered after 90 s (${written} written, ${pipe.pending} pending)`);
      assert.ok(pipe.retries > 0, "requests were sent again");
    } finally {
      pipe.close();
      await nc.close();
    }
  });
}

s("JetStream source: lanes opened with one server of three down all open and read everything", async () => {
  const lanesWanted = 9;
  const nc = await connect({ servers: [...cluster.urls] });
  try {
    const jsm = await jetstreamManager(nc);
    await jsm.streams.add({ name: "ELECT_IN", subjects: ["ein.*"], num_replicas: 3 });
    const js = jetstream(nc);
    for (let l = 0; l < lanesWanted; l++) for (let i = 0; i < 10; i++) await js.publish(`ein.${l}`, JSON.stringify(i));
    // A server that is neither ours nor the stream's leader: the stream stays readable, yet 2.9.10 places
    // an ordered consumer on any of the stream's three peers, the lost one too (about one lane in three).
    const mine = Number((nc.info?.server_name ?? "s0").slice(1));
    const leader = await streamLeader(nc, "ELECT_IN");
    const victim = [0, 1, 2].find((i) => i !== mine && i !== leader)!;
    await cluster.kill(victim);
    // A short request timeout: each attempt placed on the lost server costs that long.
    const shortJs = jetstream(nc, { timeout: 1500 });
    const logs: string[] = [];
    const opened = await Promise.allSettled(Array.from({ length: lanesWanted }, (_, l) => ConsumerLane.open({
      js: shortJs, stream: "ELECT_IN", filter: `ein.${l}`, namePrefix: `elect_${l}`, startAt: "first", resumeAfter: undefined,
      bounded: true, maxMessages: 100, highWater: 1000, wake: () => {}, log: (m) => logs.push(m), stallMs: 3000,
    })));
    const failures = opened.filter((o) => o.status === "rejected").map((o) => String((o as PromiseRejectedResult).reason));
    assert.equal(failures, [], `every lane opened\n${logs.join("\n")}`);
    const lanes = opened.map((o) => (o as PromiseFulfilledResult<ConsumerLane>).value);
    try {
      const got = lanes.map(() => [] as number[]);
      const deadline = Date.now() + 30_000;
      while (!lanes.every((l) => l.done) && Date.now() < deadline) {
        lanes.forEach((lane, l) => {
          const out: JsMsg[] = [];
          lane.drain(out);
          for (const m of out) got[l]!.push(m.json<number>());
        });
        await sleep(50);
      }
      assert.equal(got, lanes.map(() => Array.from({ length: 10 }, (_, i) => i)), "each lane read its subject, in order, once");
    } finally {
      await Promise.all(lanes.map((l) => l.close()));
    }
  } finally {
    await nc.close();
  }
});

s("connection watch: a server of the cluster SIGKILLed (not the one connected to) puts failures down to the outage", async () => {
  // Every server configured, as a job is: the client then reports the loss as a cluster update naming none.
  const nc = await connect({ servers: [...cluster.urls], noRandomize: true });
  let changes = 0;
  const watch = new ConnectionWatch(nc, systemClock, { onDisconnect: () => {}, onReconnect: () => {}, onClusterChange: () => { changes++; } });
  try {
    await nc.flush();
    await sleep(500);
    assert.not.ok(watch.inOutage(), "no outage before the kill");
    const connectedTo = cluster.urls.findIndex((u) => u.endsWith(`:${nc.info!.port}`));
    await cluster.kill((connectedTo + 1) % 3);
    const deadline = Date.now() + 20_000;
    while (changes === 0 && Date.now() < deadline) await sleep(50);
    assert.ok(changes > 0, "the cluster change is reported");
    assert.ok(watch.inOutage(), "failures now are the outage's: a quick restart, not counted");
  } finally {
    watch.stop();
    await nc.close();
  }
});

s.run();
