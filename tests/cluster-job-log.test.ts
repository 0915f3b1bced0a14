// The job's fenced log on real servers: appends that name the wrong last sequence are refused, the last
// record of each kind is kept, watchers see stored records only; on a 3-node cluster with replicas 3,
// of two writers racing with the same expected sequence exactly one wins, every time.
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { connect, type NatsConnection } from "@nats-io/transport-node";
import { withServer } from "./helpers/nats-server.ts";
import { startCluster } from "./helpers/nats-cluster.ts";
import { JobLog, type JobLogRecord } from "../runtime/cluster/job-log.ts";
import { JobNames } from "../runtime/core/names.ts";
import { rejection } from "./state-support.ts";

async function waitFor(what: string, cond: () => boolean, ms = 10_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

const s = suite("job log (one server)");
const server = withServer(s);
let nc: NatsConnection;
s.before(async () => { nc = await connect({ servers: server.url }); });
s.after(async () => { await nc?.close(); });

s("append with the expected last sequence, conflict otherwise; last() per kind; watch sees stored records only", async () => {
  const log = await JobLog.open(nc, new JobNames("jl1"));
  assert.is(await log.lastSeq(), 0);
  assert.is(await log.last("lease"), undefined);
  const seen: Array<{ record: JobLogRecord; seq: number }> = [];
  const w = log.watch((record, seq) => seen.push({ record, seq }));
  await w.ready;
  try {
    assert.is(await log.append({ kind: "lease", leader: "a", epoch: 1 }, 0), 1);
    assert.is(await log.append({ kind: "lease", leader: "b", epoch: 2 }, 0), "conflict");
    assert.is(await log.append({ kind: "deploy", leader: "a", epoch: 2, restoreId: 7, assignment: { a: ["x#0"] } }, 1), 2);
    assert.is(await log.append({ kind: "lease", leader: "a", epoch: 2 }, 2), 3);
    assert.is(await log.append({ kind: "commit", leader: "a", epoch: 2, checkpointId: 5 }, 2), "conflict");
    assert.is(await log.lastSeq(), 3);
    const before = Date.now();
    const lease = await log.last("lease");
    assert.equal({ seq: lease?.seq, record: lease?.record }, { seq: 3, record: { kind: "lease", leader: "a", epoch: 2 } });
    assert.ok(lease!.storedAt.getTime() <= before + 1000 && lease!.storedAt.getTime() > before - 60_000, `storedAt is the server's time of the append: ${lease!.storedAt.toISOString()}`);
    const deploy = await log.last("deploy");
    assert.equal({ seq: deploy?.seq, record: deploy?.record }, { seq: 2, record: { kind: "deploy", leader: "a", epoch: 2, restoreId: 7, assignment: { a: ["x#0"] } } });
    assert.is(await log.last("commit"), undefined);
    assert.equal(await log.tail(), { seq: 3, record: { kind: "lease", leader: "a", epoch: 2 } });
    await waitFor("three watched records", () => seen.length >= 3);
    await nc.flush();
    // The two refused appends never reach a watcher.
    assert.equal(seen.map((e) => [e.seq, e.record.leader, e.record.kind]), [[1, "a", "lease"], [2, "a", "deploy"], [3, "a", "lease"]]);
  } finally {
    w.stop();
  }
  // Opening again finds the same log.
  const again = await JobLog.open(nc, new JobNames("jl1"));
  assert.is(await again.lastSeq(), 3);
});

s("bad records and options are refused with the field named", async () => {
  const log = await JobLog.open(nc, new JobNames("jl2"));
  assert.match((await rejection(log.append({ kind: "commit", leader: "a", epoch: -1, checkpointId: 1 }, 0))).message, /job log record: epoch/);
  assert.match((await rejection(JobLog.open(nc, new JobNames("jl3"), { replica: 3 } as never))).message, /replica/);
});

s.run();

const c = suite("job log (3-node cluster, replicas 3)");
c("two writers with the same expected sequence: exactly one wins, 20 times", async () => {
  const cluster = await startCluster(3);
  const conns: NatsConnection[] = [];
  try {
    for (const url of cluster.urls) conns.push(await connect({ servers: url }));
    const names = new JobNames("race");
    const logs: JobLog[] = [];
    for (const nc of conns) logs.push(await JobLog.open(nc, names, { replicas: 3 }));
    for (let round = 0; round < 20; round++) {
      // Writers on different servers, so the race is decided by the replicated stream, not one connection.
      const a = logs[(round % 2) + 1]!;
      const b = logs[((round + 1) % 2) + 1]!;
      const expected = await logs[0]!.lastSeq();
      const results = await Promise.all([
        a.append({ kind: "lease", leader: "a", epoch: round + 1 }, expected),
        b.append({ kind: "lease", leader: "b", epoch: round + 1 }, expected),
      ]);
      const wins = results.filter((r) => typeof r === "number");
      assert.is(wins.length, 1, `round ${round}: ${JSON.stringify(results)}`);
      assert.is(wins[0], expected + 1);
      assert.is(await logs[0]!.lastSeq(), expected + 1);
    }
  } finally {
    await Promise.all(conns.map((nc) => nc.close()));
    await cluster.stop();
  }
});
c.run();
