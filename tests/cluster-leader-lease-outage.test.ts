// The leader lease through a server outage: a follower could see nothing while its connection was down,
// and the leader could not renew on a server that was down either, so that silence is no sign of the
// leader's death. Back first, the follower finds the leader "gone" (its ping finds no responders: the
// leader has not re-subscribed yet) and its clock says the lease ran out; taking the lease then raced the
// leader's renewal as the log came back (tests/workers-disconnect failed that way). It must give the
// leader the log's request timeout (a renewal sent as the server went down waits that long for an answer
// lost with it) and a whole lease from its reconnect instead, and still take over once the leader stays silent.
import { test } from "uvu";
import * as assert from "uvu/assert";
import { connect, type NatsConnection } from "@nats-io/transport-node";
import { RestartableServer } from "./helpers/nats-server.ts";
import { JobLog } from "../runtime/cluster/job-log.ts";
import { LeaderLease } from "../runtime/cluster/leader-lease.ts";
import { JobNames } from "../runtime/core/names.ts";
import { eventually } from "./helpers/cli.ts";

// Together longer than a restarted server's JetStream takes to answer again here (~3 s): a follower taking
// the lease as soon as the log answers would do so well within them.
const LEASE_MS = 6000;
const REQUEST_TIMEOUT_MS = 2000;

test("after an outage the follower, back first and finding the leader gone, waits the log's request timeout and a whole lease before it takes over", async () => {
  const server = await RestartableServer.start();
  const ncs: NatsConnection[] = [];
  const leases: LeaderLease[] = [];
  try {
    for (let i = 0; i < 2; i++) ncs.push(await connect({ servers: server.url, maxReconnectAttempts: -1, reconnectTimeWait: 100, reconnectJitter: 0 }));
    const names = new JobNames("outage");
    const [logA, logB] = [await JobLog.open(ncs[0]!, names, { timeoutMs: REQUEST_TIMEOUT_MS }), await JobLog.open(ncs[1]!, names, { timeoutMs: REQUEST_TIMEOUT_MS })];
    const a = new LeaderLease(logA, "a", { leaseMs: LEASE_MS }, { onElected: () => {}, onDeposed: () => {} });
    leases.push(a);
    a.start();
    await eventually("a leads", 20_000, async () => (a.isLeader ? true : undefined));
    let electedAt: number | undefined;
    const b = new LeaderLease(logB, "b", { leaseMs: LEASE_MS }, { onElected: () => { electedAt ??= performance.now(); }, onDeposed: () => {} });
    leases.push(b);
    b.start();
    await eventually("b sees a as the leader", 20_000, async () => (b.leader === "a" ? true : undefined));
    // a falls silent (as a leader that died in the outage would): b must take over in the end.
    await a.stop({ release: false });

    await server.kill();
    await new Promise((r) => setTimeout(r, 1000));
    await server.restart();
    await eventually("b reconnected", 20_000, async () => (await ncs[1]!.flush().then(() => true, () => undefined)));
    const backAt = performance.now();
    // What job-worker.ts's state-write fence does when its ping of the leader finds no responders.
    b.leaderGone("a");
    await eventually("b takes over once a stayed silent for a lease", 60_000, async () => (electedAt !== undefined ? true : undefined));
    const waited = electedAt! - backAt;
    const due = REQUEST_TIMEOUT_MS + LEASE_MS;
    assert.ok(waited >= 0.9 * due, `b took the lease ${Math.round(waited)} ms after it was back, not the log's request timeout and a lease (${due} ms) later`);
  } finally {
    for (const l of leases) await l.stop({ release: false }).catch(() => {});
    for (const nc of ncs) await nc.close().catch(() => {});
    await server.stop();
  }
});

test.run();
