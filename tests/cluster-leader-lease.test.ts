// Leader election over the job log on a real server: one of two contenders leads; a leader that vanishes
// without releasing is replaced once its lease ran out, a released lease at once; a frozen leader loses
// the lease and cannot append once another took over; epochs only grow.
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { connect, type NatsConnection } from "@nats-io/transport-node";
import { withServer } from "./helpers/nats-server.ts";
import { JobLog } from "../runtime/cluster/job-log.ts";
import { LeaderLease, type LeaseEvents } from "../runtime/cluster/leader-lease.ts";
import { JobNames } from "../runtime/core/names.ts";

async function waitFor(what: string, cond: () => boolean, ms = 20_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

interface Contender { lease: LeaderLease; elected: number[]; deposed: string[]; electedAt: number[] }

function contender(log: JobLog, id: string, options: ConstructorParameters<typeof LeaderLease>[2]): Contender {
  const c: Contender = { elected: [], deposed: [], electedAt: [], lease: undefined as never };
  const events: LeaseEvents = {
    onElected: (epoch) => { c.elected.push(epoch); c.electedAt.push(performance.now()); },
    onDeposed: (reason) => { c.deposed.push(reason); },
  };
  c.lease = new LeaderLease(log, id, options, events);
  return c;
}

const s = suite("leader lease");
const server = withServer(s);
let ncs: NatsConnection[] = [];
s.before(async () => { ncs = [await connect({ servers: server.url }), await connect({ servers: server.url })]; });
s.after(async () => { await Promise.all(ncs.map((nc) => nc.close())); });

async function logs(job: string): Promise<[JobLog, JobLog]> {
  const names = new JobNames(job);
  return [await JobLog.open(ncs[0]!, names), await JobLog.open(ncs[1]!, names)];
}

s("one of two leads; stop without release → the other takes over only once the lease ran out", async () => {
  const [la, lb] = await logs("lease1");
  const leaseMs = 1500;
  const a = contender(la, "a", { leaseMs });
  const b = contender(lb, "b", { leaseMs });
  try {
    a.lease.start();
    b.lease.start();
    await waitFor("a leader", () => a.lease.isLeader || b.lease.isLeader);
    // Renewals keep it: after three lease periods still exactly one leader, elected once.
    await new Promise((r) => setTimeout(r, 3 * leaseMs));
    assert.is([a, b].filter((c) => c.lease.isLeader).length, 1);
    assert.is(a.elected.length + b.elected.length, 1);
    const [leader, other] = a.lease.isLeader ? [a, b] : [b, a];
    assert.is(other.lease.leader, leader.lease.workerId);
    assert.is(other.lease.epoch, 1);
    const stoppedAt = performance.now();
    await leader.lease.stop({ release: false });
    await waitFor("the other to take over", () => other.lease.isLeader);
    // Its last renewal was at most renewEveryMs (leaseMs / 4) before the stop.
    assert.ok(other.electedAt[0]! - stoppedAt >= leaseMs * 0.75 - 50, `took over ${other.electedAt[0]! - stoppedAt} ms after the stop`);
    assert.equal(other.elected, [2]);
    assert.equal(other.lease.won, { from: leader.lease.workerId, why: "expired" }, "how it won the lease (a takeover's failure says so)");
    assert.equal(leader.lease.won, { from: undefined, why: "free" }, "the first leader found an empty log");
  } finally {
    await a.lease.stop();
    await b.lease.stop();
  }
});

s("a released lease is taken over at once (well before a 60 s lease would run out)", async () => {
  const [la, lb] = await logs("lease2");
  const a = contender(la, "a", { leaseMs: 60_000 });
  const b = contender(lb, "b", { leaseMs: 60_000 });
  try {
    a.lease.start();
    await waitFor("a leads", () => a.lease.isLeader);
    b.lease.start();
    await waitFor("b sees a", () => b.lease.leader === "a");
    await a.lease.stop();
    await waitFor("b takes over", () => b.lease.isLeader, 15_000);
    assert.equal(b.elected, [2]);
    assert.equal(b.lease.won, { from: "a", why: "released" });
    assert.equal((await la.last("lease"))?.record, { kind: "lease", leader: "b", epoch: 2 });
  } finally {
    await a.lease.stop();
    await b.lease.stop();
  }
});

s("a frozen leader loses the lease: its appendAsLeader fails once another took over; epochs grow", async () => {
  const [la, lb] = await logs("lease3");
  const leaseMs = 1200;
  // a's clock stops while it is frozen, as if it had not noticed the time passing: only the log fences it.
  let frozenAt: number | undefined;
  const a = contender(la, "a", { leaseMs, now: () => frozenAt ?? performance.now() });
  const b = contender(lb, "b", { leaseMs });
  try {
    a.lease.start();
    await waitFor("a leads", () => a.lease.isLeader);
    const deployEpoch = a.lease.nextEpoch();
    assert.ok(await a.lease.appendAsLeader({ kind: "deploy", leader: "a", epoch: deployEpoch, assignment: { a: ["v#0"] } }));
    assert.is(a.lease.epoch, 2);
    b.lease.start();
    await waitFor("b sees a's deployment", () => b.lease.epoch === 2);
    frozenAt = performance.now();
    a.lease.pauseRenewalsForTest();
    await waitFor("b takes over", () => b.lease.isLeader);
    assert.equal(b.elected, [3]);
    assert.ok(a.lease.isLeader, "a's own (frozen) clock still says leader");
    const ok = await a.lease.appendAsLeader({ kind: "commit", leader: "a", epoch: 2, checkpointId: 9 });
    assert.is(ok, false);
    assert.is(a.lease.isLeader, false);
    assert.is(a.deposed.length, 1);
    assert.match(a.deposed[0]!, /worker "b"/);
    assert.is(await la.last("commit"), undefined);
    // b's deployment numbers the next epoch.
    assert.ok(await b.lease.appendAsLeader({ kind: "deploy", leader: "b", epoch: b.lease.nextEpoch(), assignment: { b: ["v#0"] } }));
    assert.is((await lb.last("deploy"))?.record.epoch, 4);
  } finally {
    await a.lease.stop();
    await b.lease.stop();
  }
});

s("a leader whose renewals stop is no longer leader once its own fence deadline passed; alone, its next append wins the lease back", async () => {
  const [la] = await logs("lease4");
  const a = contender(la, "a", { leaseMs: 800 });
  try {
    a.lease.start();
    await waitFor("a leads", () => a.lease.isLeader);
    a.lease.pauseRenewalsForTest();
    await waitFor("a's fence", () => !a.lease.isLeader);
    assert.is(a.deposed.length, 0, "no event needed for isLeader to turn false");
    // Nobody else appended: an append expecting a's own last record still lands (a slow server, a long
    // pause), and a leads again; with another worker's record in between it would fail (test above).
    assert.is(await a.lease.appendAsLeader({ kind: "commit", leader: "a", epoch: 1, checkpointId: 1 }), true);
    assert.is(a.lease.isLeader, true);
    assert.is(a.deposed.length, 0);
    assert.is((await la.last("commit"))?.record.checkpointId, 1);
  } finally {
    await a.lease.stop();
  }
});

s("a follower that sees the leader's renewals does not read the log; once they stop it reads it and takes over", async () => {
  const [la, lb] = await logs("lease6");
  const names = new JobNames("lease6");
  const leaseMs = 1200;
  const a = contender(la, "a", { leaseMs });
  const b = contender(lb, "b", { leaseMs });
  // What a read of the log's tail sends (job-log.ts tail: the stream's info, then its last message).
  let reads = 0;
  const sub = ncs[0]!.subscribe(`$JS.API.STREAM.INFO.${names.logStream}`, { callback: () => { reads++; } });
  try {
    await ncs[0]!.flush();
    a.lease.start();
    await waitFor("a leads", () => a.lease.isLeader);
    b.lease.start();
    await waitFor("b sees a", () => b.lease.leader === "a");
    const readsBefore = reads;
    // Three lease periods of renewals (b's lease ticks every leaseMs / 4).
    await new Promise((r) => setTimeout(r, 3 * leaseMs));
    assert.is(reads - readsBefore, 0);
    a.lease.pauseRenewalsForTest();
    await waitFor("b takes over", () => b.lease.isLeader);
    assert.ok(reads > readsBefore);
    assert.equal(b.elected, [2]);
  } finally {
    sub.unsubscribe();
    await a.lease.stop();
    await b.lease.stop();
  }
});

s("options are checked", () => {
  assert.throws(() => new LeaderLease(undefined as never, "a", { leaseMs: 1000, renewEvery: 5 } as never, { onElected() {}, onDeposed() {} }), /renewEvery/);
  assert.throws(() => new LeaderLease(undefined as never, "a", { leaseMs: 1000, renewEveryMs: 900 }, { onElected() {}, onDeposed() {} }), /renewEveryMs/);
});

s.run();
