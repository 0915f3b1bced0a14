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
import { packJson, packJsonAgainst } from "../runtime/cluster/packed-json.ts";

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


// Heartbeats packed against the worker's last full one (~13 bytes instead of ~100), and full ones on request.
const identity = { graph: "9c1e07b4d2a85f3e", settings: { parallelism: "auto", maxParallelism: 128, stateBackend: "jetstream-kv", mode: "automatic", checkpointIntervalMs: 1000, clock: "system" } };

s("a view started after a worker's full heartbeat asks for one and learns the worker at once", async () => {
  const names = new JobNames("m6");
  // Every 2 s: the next full heartbeat of its own (the 10th) comes 20 s after the first, far past the deadline.
  const hb = new WorkerHeartbeat(nc, names, () => ({ id: "w", host: "h6", pid: 66, startedAt: "t", epoch: 4, subtasks: ["a#0"], identity }), { intervalMs: 2000 });
  hb.start();
  const joined: WorkerInfo[] = [];
  const v = new MembershipView(nc, names, { timeoutMs: 20_000, probeEveryMs: 250 }, { onJoin: (w) => joined.push(w), onLeave: () => {} });
  try {
    await new Promise((r) => setTimeout(r, 2300)); // the full heartbeat and one packed against it
    v.start();
    await waitFor("w joined", () => joined.length === 1, 5000);
    assert.equal({ ...joined[0]!, lagMs: 0 }, { id: "w", host: "h6", pid: 66, startedAt: "t", epoch: 4, subtasks: ["a#0"], identity, lagMs: 0 });
  } finally {
    v.stop();
    await hb.stop();
  }
});

s("most heartbeats are packed against the last full one, a fraction of its size, and a view decodes every one", async () => {
  const names = new JobNames("m7");
  const state = { epoch: 0, subtasks: [] as string[] };
  const beats: Uint8Array[] = [];
  let wanted = 0;
  const raw = nc.subscribe(names.workerHeartbeats, { callback: (_e, m) => { beats.push(m.data); } });
  const asks = nc.subscribe(names.workerHeartbeatsWanted, { callback: () => { wanted++; } });
  const lines: string[] = [];
  const joined: string[] = [];
  const v = new MembershipView(nc, names, { timeoutMs: 20_000, probeEveryMs: 100, log: (l) => lines.push(l) }, { onJoin: (w) => joined.push(w.id), onLeave: () => {} });
  v.start();
  await nc.flush();
  const startedAt = new Date().toISOString();
  const hb = new WorkerHeartbeat(nc, names, () => ({ id: "w-5f2c9a1e", host: "worker-host-7", pid: 48213, startedAt, identity, ...state }), { intervalMs: 50 });
  hb.start();
  try {
    // Each beat says something new (its subtasks every third): the view follows every one.
    for (let i = 1; beats.length < 12; i++) {
      state.epoch = i;
      const subtasks = (state.subtasks = [`a#${Math.floor(i / 3)}`, `b#${Math.floor(i / 3)}`]);
      await waitFor(`epoch ${i} seen`, () => v.members()[0]?.epoch === i && v.members()[0]?.subtasks[1] === subtasks[1], 5000);
    }
    const first = beats.slice(0, 12);
    const against = first.filter((b) => b[0] === 0x03);
    const full = first.filter((b) => b[0] === 0x04); // PACKED_VERSION (packed-json.ts)
    assert.ok(against.length >= 8, `${against.length} of 12 packed against a reference`);
    assert.ok(full.length >= 1 && full.length + against.length === 12, `${full.length} full`);
    const shortestFull = Math.min(...full.map((b) => b.length));
    for (const b of against) assert.ok(b.length < shortestFull / 2, `${b.length} bytes against a full one of ${shortestFull}`);
    assert.is(wanted, 1, "only the view's start asked for full heartbeats: it held every reference");
    assert.equal(lines, []);
    assert.equal(joined, ["w-5f2c9a1e"]);
    const m = v.members()[0]!;
    assert.equal([m.host, m.pid, m.startedAt, m.identity], ["worker-host-7", 48213, startedAt, identity]);
  } finally {
    raw.unsubscribe();
    asks.unsubscribe();
    v.stop();
    await hb.stop();
  }
});

s("a heartbeat packed against a reference not held asks for full ones, rate-limited, and is not malformed", async () => {
  const names = new JobNames("m8");
  let wanted = 0;
  const asks = nc.subscribe(names.workerHeartbeatsWanted, { callback: () => { wanted++; } });
  await nc.flush();
  const lines: string[] = [];
  const joined: WorkerInfo[] = [];
  const v = new MembershipView(nc, names, { timeoutMs: 20_000, probeEveryMs: 300, log: (l) => lines.push(l) }, { onJoin: (w) => joined.push(w), onLeave: () => {} });
  const ping = nc.subscribe(names.workerPing("w"), { callback: (_e, m) => { m.respond(); } });
  v.start();
  try {
    await waitFor("the start's request", () => wanted === 1, 5000);
    await new Promise((r) => setTimeout(r, 400)); // past the rate limit
    const hb = { id: "w", host: "h8", pid: 88, startedAt: "t", lagMs: 0, epoch: 1, subtasks: [] };
    const reference = packJsonAgainst(hb, undefined);
    for (let i = 0; i < 5; i++) nc.publish(names.workerHeartbeats, packJsonAgainst({ ...hb, epoch: 2 + i }, reference.text).data);
    await nc.flush();
    await waitFor("a request", () => wanted === 2, 5000);
    await new Promise((r) => setTimeout(r, 100));
    assert.is(wanted, 2, "five deltas at once: one request");
    assert.equal(joined, []);
    assert.equal(lines, []);
    nc.publish(names.workerHeartbeats, reference.data);
    await waitFor("w joined", () => joined.length === 1, 5000);
    assert.is(joined[0]!.epoch, 1);
    nc.publish(names.workerHeartbeats, packJsonAgainst({ ...hb, epoch: 9 }, reference.text).data);
    await waitFor("the delta read", () => v.members()[0]?.epoch === 9, 5000);
    assert.equal(lines, []);
  } finally {
    asks.unsubscribe();
    ping.unsubscribe();
    v.stop();
  }
});

s.run();
