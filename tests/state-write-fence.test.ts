// The fence on a worker's KV state writes (actors/worker/state-write-fence.ts), against a real server:
// the KV pipe holds writes while the fence is closed and sends them in order once it opens (reads go on),
// fails them when it stays closed past the retry budget; a follower's fence opens only on the leader's
// "member of your epoch", dated by when the ping was sent, so an answer read after a freeze (the ping sent
// before it) opens nothing; a disconnect closes it; a backend of an epoch left behind stays shut; the leader
// counts the answer as the follower's heartbeat. End to end, under a freeze: `npm run bench fence`.
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { Kvm } from "@nats-io/kv";
import type { NatsConnection } from "@nats-io/transport-node";
import { withServer } from "./helpers/nats-server.ts";
import { connectTo } from "./state-support.ts";
import { KvPipe } from "../state/backends/jetstream-kv/pipe.ts";
import { StateWriteFence, answerMembershipPing } from "../actors/worker/state-write-fence.ts";
import { MembershipAnswer } from "../actors/worker/protocol.ts";
import { MembershipView, WorkerHeartbeat } from "../runtime/cluster/membership.ts";
import { JobNames } from "../runtime/core/names.ts";

const s = suite("state write fence");
const server = withServer(s);
let nc: NatsConnection;
s.before(async () => { nc = await connectTo(server.url); });
s.after(async () => { await nc?.close(); });

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
async function waitFor(what: string, cond: () => boolean, ms = 10_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(10);
  }
}
const text = (b: Uint8Array | undefined) => (b === undefined ? undefined : new TextDecoder().decode(b));
let buckets = 0;

s("a closed fence holds the pipe's writes (reads go on); opened, they go out in order", async () => {
  const bucket = `fence_${process.pid}_${++buckets}`;
  await new Kvm(nc).create(bucket, { history: 1 });
  let open = false;
  const pipe = new KvPipe(nc, bucket, { getWindow: 8, writeWindow: 8, timeoutMs: 10_000, mayWrite: () => open });
  const reader = new KvPipe(nc, bucket, { getWindow: 8, writeWindow: 8, timeoutMs: 10_000 });
  try {
    const stored: number[] = [];
    const writes = Array.from({ length: 20 }, (_, i) => pipe.put("k", new TextEncoder().encode(String(i))).then((seq) => { stored.push(seq); }));
    // Reads are not fenced: the same pipe answers one while its writes wait.
    assert.is(await pipe.get("k"), undefined);
    await sleep(300);
    assert.equal(stored, [], "no write acknowledged while the fence is closed");
    assert.is(await reader.get("k"), undefined, "nothing reached KV");
    assert.is(pipe.writesFenced, 20, "the held writes are counted (weir_state_writes_fenced)");
    open = true;
    await Promise.all(writes);
    assert.equal(stored, [...stored].sort((a, b) => a - b), "acknowledged in the order issued");
    assert.is(text(await reader.get("k")), "19", "the last write issued is the value");
    assert.is(pipe.writesFenced, 0);
  } finally {
    pipe.close();
    reader.close();
  }
});

s("a fence closed past the retry budget fails the writes waiting; a close fails them too", async () => {
  const bucket = `fence_${process.pid}_${++buckets}`;
  await new Kvm(nc).create(bucket, { history: 1 });
  const pipe = new KvPipe(nc, bucket, { getWindow: 8, writeWindow: 8, timeoutMs: 10_000, retryBudgetMs: 200, mayWrite: () => false });
  const other = new KvPipe(nc, bucket, { getWindow: 8, writeWindow: 8, timeoutMs: 10_000, mayWrite: () => false });
  try {
    const e = await pipe.put("k", new TextEncoder().encode("1")).then(() => undefined, (x: unknown) => x as Error);
    assert.ok(e, "the held write failed");
    assert.match(e!.message, /held for \d+ ms: this worker could not confirm that it still runs in the job's epoch/);
    const held = other.put("k", new TextEncoder().encode("2")).then(() => "stored", (x: unknown) => (x as Error).message);
    other.close("closed by the test");
    assert.is(await held, "closed by the test");
    assert.is(await pipe.get("k"), undefined, "neither write reached KV");
  } finally {
    pipe.close();
    other.close();
  }
});

/** A follower's fence against a leader that answers pings on its heartbeat's ping subject, as job-worker.ts wires it. */
function follower(job: string, epoch: { value: number }, memberTimeoutMs: number, seen: { leader: number; gone: number }): StateWriteFence {
  return new StateWriteFence({
    nc, names: new JobNames(job), workerId: "follower", memberTimeoutMs, pingTimeoutMs: 5_000,
    leads: () => false, leader: () => "leader", epoch: () => epoch.value,
    onLeaderSeen: () => { seen.leader++; }, onLeaderGone: () => { seen.gone++; },
  });
}

s("a follower may write only while the leader confirms its epoch, as of the ping's sending; a disconnect voids it", async () => {
  const job = `fence-${process.pid}-a`;
  const names = new JobNames(job);
  const leaderEpoch = { value: 3 };
  const asked: Array<{ worker: string; epoch: number }> = [];
  const leader = new WorkerHeartbeat(nc, names, () => ({ id: "leader", host: "h", pid: 1, startedAt: "t", epoch: leaderEpoch.value, subtasks: [] }), {
    intervalMs: 10_000,
    answerPing: (body) => answerMembershipPing(body, (worker, epoch) => { asked.push({ worker, epoch }); return epoch === leaderEpoch.value; }),
  });
  leader.start();
  const epoch = { value: 2 };
  const seen = { leader: 0, gone: 0 };
  const fence = follower(job, epoch, 3_000, seen);
  try {
    await nc.flush();
    assert.is(fence.mayWrite(), false, "never confirmed: closed (and the leader is asked)");
    await waitFor("the leader's answer", () => seen.leader >= 1);
    assert.equal(asked[0], { worker: "follower", epoch: 2 });
    assert.is(fence.mayWrite(), false, "the leader runs epoch 3 without it: still closed");
    epoch.value = 3;
    await waitFor("confirmed in epoch 3", () => fence.mayWrite());
    // A backend opened in epoch 3 writes while the worker runs epoch 3, and never once it moved on.
    const gate3 = fence.forEpoch(3);
    assert.ok(gate3());
    epoch.value = 4;
    leaderEpoch.value = 4;
    await waitFor("confirmed in epoch 4", () => fence.forEpoch(4)());
    assert.is(gate3(), false, "epoch 3's backend stays shut though the worker is confirmed in epoch 4");
    fence.void();
    assert.is(fence.mayWrite(), false, "a disconnect voids the confirmation");
    await waitFor("confirmed again", () => fence.mayWrite());
    // The leader's answer is good for 0.9 × its membership timeout from the ping's sending, no longer.
    await sleep(2_800);
    assert.is(fence.mayWrite(), false, "expired");
  } finally {
    await leader.stop();
  }
});

s("an answer to a ping sent before a freeze opens nothing: it is dated by its sending", async () => {
  const job = `fence-${process.pid}-b`;
  const names = new JobNames(job);
  // A leader whose "member" comes 1.5 s after the ping, as a reply read by a follower thawed that much
  // later would (the follower's clock went on while it was stopped).
  const sub = nc.subscribe(names.workerPing("leader"), { callback: (_e, m) => { setTimeout(() => m.respond(MembershipAnswer.Member), 1_500); } });
  const seen = { leader: 0, gone: 0 };
  const fence = follower(job, { value: 1 }, 1_000, seen);
  try {
    await nc.flush();
    fence.ask();
    await waitFor("the late answer", () => seen.leader === 1);
    assert.is(fence.mayWrite(), false, "sent 1.5 s ago: older than 0.9 × the 1 s timeout");
  } finally {
    sub.unsubscribe();
  }
});

s("the leader counts its answer as the follower's heartbeat", async () => {
  const job = `fence-${process.pid}-c`;
  const names = new JobNames(job);
  const gone: string[] = [];
  const view = new MembershipView(nc, names, { timeoutMs: 1_500, probeEveryMs: 100 }, { onJoin: () => {}, onLeave: (w) => gone.push(w.id) });
  view.start();
  const member = new WorkerHeartbeat(nc, names, () => ({ id: "f", host: "h", pid: 2, startedAt: "t", epoch: 1, subtasks: [] }), { intervalMs: 100_000 });
  member.start(); // one heartbeat, at once, then none for 100 s
  try {
    await waitFor("joined", () => view.members().length === 1);
    assert.is(view.noteAlive("nobody"), false);
    const until = performance.now() + 3_000;
    while (performance.now() < until) {
      assert.ok(view.noteAlive("f"), "a member");
      await sleep(200);
    }
    assert.equal(gone, [], "noted alive every 200 ms: not judged gone in 3 s (twice its timeout)");
    await waitFor("judged gone once no longer noted", () => gone.length === 1);
  } finally {
    view.stop();
    await member.stop();
  }
});

s.run();
