// Heartbeats and failure detection with real worker processes: SIGKILL is "crashed" (its ping gets no
// responders) well before the heartbeat timeout, SIGSTOP is "missed-heartbeats", SIGTERM is "left".
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { spawn, type ChildProcess } from "node:child_process";
import { fileURLToPath } from "node:url";
import { connect, type NatsConnection } from "@nats-io/transport-node";
import { withServer } from "./helpers/nats-server.ts";
import { MembershipView, WorkerHeartbeat, type LeaveReason, type WorkerInfo } from "../runtime/cluster/membership.ts";
import { JobNames } from "../runtime/core/names.ts";
import { packJson } from "../runtime/cluster/packed-json.ts";

const WORKER = fileURLToPath(new URL("./fixtures/cluster/heartbeat-worker.ts", import.meta.url));

async function waitFor(what: string, cond: () => boolean, ms = 30_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

function startWorker(url: string, job: string, id: string): Promise<ChildProcess> {
  const child = spawn(process.execPath, ["--import", "tsx", WORKER, url, job, id], { stdio: ["ignore", "pipe", "inherit"] });
  return new Promise((resolve, reject) => {
    let out = "";
    child.stdout!.on("data", (d) => { out += d; if (out.includes("ready")) resolve(child); });
    child.on("exit", (code) => reject(new Error(`worker ${id} exited with ${code}`)));
  });
}

function exited(child: ChildProcess): Promise<void> {
  return child.exitCode !== null || child.signalCode !== null ? Promise.resolve() : new Promise((r) => child.on("exit", () => r()));
}

interface Seen { joined: string[]; left: Array<{ id: string; reason: LeaveReason; at: number }> }
function view(nc: NatsConnection, job: string, timeoutMs: number): { view: MembershipView; seen: Seen } {
  const seen: Seen = { joined: [], left: [] };
  const v = new MembershipView(nc, new JobNames(job), { timeoutMs, probeEveryMs: 250 }, {
    onJoin: (w: WorkerInfo) => seen.joined.push(w.id),
    onLeave: (w: WorkerInfo, reason) => seen.left.push({ id: w.id, reason, at: performance.now() }),
  });
  v.start();
  return { view: v, seen };
}

const s = suite("membership");
const server = withServer(s);
let nc: NatsConnection;
s.before(async () => { nc = await connect({ servers: server.url }); });
s.after(async () => { await nc?.close(); });

s("SIGKILL → crashed, well before the heartbeat timeout; the survivor stays", async () => {
  const timeoutMs = 20_000;
  const { view: v, seen } = view(nc, "m1", timeoutMs);
  await nc.flush();
  const children: ChildProcess[] = [];
  try {
    children.push(await startWorker(server.url, "m1", "w1"), await startWorker(server.url, "m1", "w2"));
    await waitFor("both joined", () => seen.joined.length === 2);
    assert.equal(v.members().map((m) => m.id), ["w1", "w2"]);
    const killedAt = performance.now();
    children[0]!.kill("SIGKILL");
    await waitFor("w1 reported", () => seen.left.length > 0, timeoutMs);
    assert.equal(seen.left.map((l) => [l.id, l.reason]), [["w1", "crashed"]]);
    // By its ping, not by the 20 s heartbeat timeout.
    assert.ok(seen.left[0]!.at - killedAt < timeoutMs / 2, `${seen.left[0]!.at - killedAt} ms`);
    assert.equal(v.members().map((m) => m.id), ["w2"]);
  } finally {
    v.stop();
    for (const c of children) { c.kill("SIGKILL"); await exited(c); }
  }
});

s("SIGSTOP → missed-heartbeats (a request timeout alone is not death); SIGTERM → left", async () => {
  const { view: v, seen } = view(nc, "m2", 2000);
  await nc.flush();
  const children: ChildProcess[] = [];
  try {
    children.push(await startWorker(server.url, "m2", "w1"), await startWorker(server.url, "m2", "w2"));
    await waitFor("both joined", () => seen.joined.length === 2);
    const stoppedAt = performance.now();
    children[0]!.kill("SIGSTOP");
    await waitFor("w1 reported", () => seen.left.length > 0);
    assert.equal(seen.left.map((l) => [l.id, l.reason]), [["w1", "missed-heartbeats"]]);
    assert.ok(seen.left[0]!.at - stoppedAt >= 2000 - 300, `after ${seen.left[0]!.at - stoppedAt} ms`);
    // Resumed, the same process is not taken back (it was declared gone).
    children[0]!.kill("SIGCONT");
    children[1]!.kill("SIGTERM");
    await exited(children[1]!);
    await waitFor("w2 left", () => seen.left.length === 2);
    assert.equal(seen.left[1]!.id, "w2");
    assert.is(seen.left[1]!.reason, "left");
    await new Promise((r) => setTimeout(r, 500));
    assert.equal(seen.joined, ["w1", "w2"]);
    assert.equal(v.members(), []);
  } finally {
    v.stop();
    for (const c of children) { c.kill("SIGKILL"); await exited(c); }
  }
});

s("the timeout stretches with the event-loop lag a worker reported; malformed heartbeats are ignored", async () => {
  const names = new JobNames("m3");
  const lines: string[] = [];
  const seen: Seen = { joined: [], left: [] };
  const v = new MembershipView(nc, names, { timeoutMs: 1000, probeEveryMs: 100, log: (l) => lines.push(l) }, {
    onJoin: (w) => seen.joined.push(w.id),
    onLeave: (w, reason) => seen.left.push({ id: w.id, reason, at: performance.now() }),
  });
  v.start();
  const ping = nc.subscribe(names.workerPing("slow"), { callback: (_e, m) => { m.respond(); } });
  try {
    await nc.flush();
    // An older weir's heartbeat (plain JSON) is said to be one; the other malformed ones add no line.
    nc.publish(names.workerHeartbeats, JSON.stringify({ id: "old", host: "h", pid: 2, startedAt: "t", lagMs: 0, epoch: 0, subtasks: [] }));
    nc.publish(names.workerHeartbeats, "{not json");
    nc.publish(names.workerHeartbeats, packJson({ id: "x" }));
    // A worker that reported a 2.5 s stall, then went quiet: allowed 5 s, not 1 s.
    const hb = { id: "slow", host: "h", pid: 1, startedAt: "t", lagMs: 2500, epoch: 0, subtasks: [] };
    nc.publish(names.workerHeartbeats, packJson(hb));
    await waitFor("slow joined", () => seen.joined.length === 1);
    const joinedAt = performance.now();
    await waitFor("slow declared gone", () => seen.left.length === 1);
    assert.is(seen.left[0]!.reason, "missed-heartbeats");
    assert.ok(seen.left[0]!.at - joinedAt >= 5000 - 200, `after ${seen.left[0]!.at - joinedAt} ms`);
    assert.is(lines.length, 1);
    assert.match(lines[0]!, /malformed heartbeat/);
    assert.match(lines[0]!, /worker old sends its heartbeats as plain JSON: it runs a weir from before/);
  } finally {
    ping.unsubscribe();
    v.stop();
  }
});

s("WorkerHeartbeat measures event-loop lag; options are checked", async () => {
  const hb = new WorkerHeartbeat(nc, new JobNames("m4"), () => ({ id: "w", host: "h", pid: 1, startedAt: "t", epoch: 0, subtasks: [] }), { intervalMs: 50 });
  hb.start();
  try {
    const until = performance.now() + 300;
    while (performance.now() < until) { /* block the loop */ }
    await new Promise((r) => setTimeout(r, 120));
    assert.ok(hb.lagMs >= 200, `lag ${hb.lagMs}`);
  } finally {
    await hb.stop();
  }
  assert.throws(() => new WorkerHeartbeat(nc, new JobNames("m4"), () => ({ id: "w", host: "h", pid: 1, startedAt: "t", epoch: 0, subtasks: [] }), { interval: 5 } as never), /interval/);
});

s("a member whose heartbeats come in time is not pinged; one whose heartbeats stop is", async () => {
  const names = new JobNames("m5");
  const seen: Seen = { joined: [], left: [] };
  const v = new MembershipView(nc, names, { timeoutMs: 20_000, probeEveryMs: 100 }, {
    onJoin: (w) => seen.joined.push(w.id),
    onLeave: (w, reason) => seen.left.push({ id: w.id, reason, at: performance.now() }),
  });
  let pings = 0;
  const ping = nc.subscribe(names.workerPing("w"), { callback: (_e, m) => { pings++; m.respond(); } });
  const hb = { id: "w", host: "h", pid: 1, startedAt: "t", lagMs: 0, epoch: 0, subtasks: [] };
  const beats = setInterval(() => nc.publish(names.workerHeartbeats, packJson(hb)), 30);
  try {
    await nc.flush();
    v.start();
    await waitFor("w joined", () => seen.joined.length === 1);
    // Ten probe intervals with a heartbeat every 30 ms: the pings an idle job would pay for nothing.
    await new Promise((r) => setTimeout(r, 1000));
    assert.is(pings, 0);
    clearInterval(beats);
    await waitFor("a ping once the heartbeats stopped", () => pings > 0);
    assert.equal(seen.left, []);
  } finally {
    clearInterval(beats);
    ping.unsubscribe();
    v.stop();
  }
});

s.run();
