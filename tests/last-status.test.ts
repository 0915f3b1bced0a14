// The last known status of a job outlives its process: `weir status <job>` says it is not running, what
// it ended as, how long ago, and why it failed. Written at state changes and every few seconds, never per
// record.
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { spawn } from "node:child_process";
import { connect, type NatsConnection } from "@nats-io/transport-node";
import { jetstreamManager } from "@nats-io/jetstream";
import { withServer } from "./helpers/nats-server.ts";
import { StreamEnvironment } from "../runtime/api/environment.ts";
import { Sources } from "../runtime/sources/mod.ts";
import { Sinks } from "../runtime/sinks/mod.ts";
import { GlobalNames } from "../runtime/core/names.ts";
import { Kvm } from "@nats-io/kv";
import { LAST_FAILURES_KEPT, LAST_FAILURE_CHARS, formatLastStatus, readLastStatus, type LastStatus } from "../actors/job/last-status.ts";
import { lastStatusOf, type JobStatus } from "../actors/job/job-status.ts";
import { carriedHistory, previousStatus, type Takeover } from "../actors/worker/takeover-history.ts";

const s = suite("last known status");
const server = withServer(s);
let nc: NatsConnection;
s.before(async () => { nc = await connect({ servers: server.url }); });
s.after(async () => { await nc?.close(); });

function weirStatus(...args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ["bin/weir.mjs", "status", ...args, "--nats", server.url], { stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d) => (stdout += d));
    child.stderr.on("data", (d) => (stderr += d));
    child.on("exit", (code) => resolve({ code, stdout, stderr }));
  });
}

s("a failed job: `weir status <job>` says not running, failed, how long ago, and why", async () => {
  const e = StreamEnvironment.create({ name: "lsfail", nats: server.url, stateBackend: "heap" });
  e.fromSource(Sources.array([1, 2, 3]), { name: "nums" })
    .map((n: number) => { if (n === 2) throw new Error("boom on two"); return n; }, { name: "explode" })
    .sinkTo(Sinks.nats({ subject: "ls.out" }));
  await e.execute().then(() => assert.unreachable("the job should fail"), () => {});
  await e.close();
  const r = await weirStatus("lsfail");
  assert.is(r.code, 1);
  assert.match(r.stdout, /^lsfail: not running; failed \d+ s ago: .*operator "explode".*boom on two/);
  assert.is(r.stderr, 'weir: job "lsfail" is not running\n', "a non-zero exit says why on stderr");
  const all = await weirStatus("--json");
  assert.is(all.code, 0, all.stderr);
  assert.ok(Array.isArray(JSON.parse(all.stdout)), `status --json of every job is one JSON array: ${all.stdout.slice(0, 200)}`);
  const one = await weirStatus("lsfail", "--json");
  assert.is(one.code, 1);
  const ended = JSON.parse(one.stdout) as { job: string; running: boolean; state?: string; last?: { state: string } };
  assert.equal([ended.job, ended.running, ended.state, ended.last?.state], ["lsfail", false, "failed", "failed"], "the ended job's state at the top, as a running job's");
});

s("a finished job of 20,000 records: its status was written a handful of times, not per record", async () => {
  const e = StreamEnvironment.create({ name: "lsdone", nats: server.url, stateBackend: "heap" });
  e.fromSource(Sources.generator({ count: 20_000, make: (i) => i }), { name: "gen" }).sinkTo(Sinks.nats({ subject: "ls.done" }));
  await e.execute();
  await e.close();
  const last = await readLastStatus(nc, "lsdone");
  assert.is(last?.state, "finished");
  assert.is(last?.recordsIn, 20_000);
  const r = await weirStatus("lsdone");
  assert.match(r.stdout, /^lsdone: not running; finished \d+ s ago \(in 20000, out 20000/);
  const jsm = await jetstreamManager(nc);
  // Every write is a message: the stream's last sequence counts them, for both jobs of this file.
  const total = (await jsm.streams.info(`KV_${GlobalNames.jobsBucket}`)).state.last_seq;
  assert.ok(total < 50, `${total} status writes in the bucket`);
});

s("an entry a killed process left: last seen running, did not end cleanly", () => {
  const line = formatLastStatus({
    job: "j", state: "running", at: 0, startedAt: "", restarts: 2, restartStrategy: "none",
    recordsIn: 5, recordsOut: 4, deadLetters: 1, host: "h", pid: 42, failure: "x",
  }, 3 * 60_000);
  assert.is(line, "j: not running; last seen running 3 min ago (pid 42 on h); it did not end cleanly; last failure: x (in 5, out 4, dead letters 1, restarts 2)");
});

const OLD_ENTRY = { job: "lsold", state: "running", at: 1, startedAt: "2026-01-01T00:00:00.000Z", restarts: 2, restartStrategy: "none", recordsIn: 5, recordsOut: 4, deadLetters: 0, host: "h", pid: 42 };

s("an entry written before failures, rebalances and the leader's id were kept still reads; a malformed one reads as none", async () => {
  const kv = await new Kvm(nc).create(GlobalNames.jobsBucket, { history: 1 });
  await kv.put("lsold", JSON.stringify(OLD_ENTRY));
  assert.equal(await readLastStatus(nc, "lsold"), OLD_ENTRY);
  await kv.put("lsbad", JSON.stringify({ ...OLD_ENTRY, job: "lsbad", failures: [{ at: "x", error: 1, restarted: true }] }));
  assert.is(await readLastStatus(nc, "lsbad"), undefined);
});

s("what is kept stays small: the last failures, each error cut short", () => {
  const failures = Array.from({ length: 20 }, (_, i) => ({ at: `t${i}`, error: `e${i} ${"x".repeat(2000)}`, restarted: true }));
  const kept = lastStatusOf({ job: "j", state: "running", startedAt: "", restarts: 20, restartsNotCounted: 1, restartStrategy: "none", recordsIn: 0, recordsOut: 0, deadLetters: 0, failures, rebalances: [], worker: "w1" } as unknown as JobStatus);
  assert.is(kept.failures?.length, LAST_FAILURES_KEPT);
  assert.ok(kept.failures!.every((f) => f.error.length <= LAST_FAILURE_CHARS));
  assert.equal([kept.failures![0]!.at, kept.restartsNotCounted, kept.worker], ["t15", 1, "w1"]);
});

s("a takeover carries on the previous leader's history, if that status is this run's, and adds itself", async () => {
  const kv = await new Kvm(nc).create(GlobalNames.jobsBucket, { history: 1 });
  const before: LastStatus = { ...OLD_ENTRY, job: "lsprev", restartsNotCounted: 1, worker: "w1", failures: [{ at: "t0", error: "boom", restarted: true }], rebalances: [{ at: "t0", epoch: 2, cause: "deployment" }] };
  await kv.put("lsprev", JSON.stringify(before));
  const t = (o: Partial<Takeover>): Takeover => ({ from: "w1", why: "gone", deployedAt: new Date(Date.now() + 3_600_000), leaseMs: 3000, ...o });
  assert.equal(await previousStatus(nc, "lsprev", t({})), before, "written by the leader the lease was won from");
  assert.is(await previousStatus(nc, "lsprev", t({ from: "w9" })), undefined, "another leader's, stored before the run's last deployment");
  assert.equal(await previousStatus(nc, "lsprev", t({ from: "w9", deployedAt: new Date(0) })), before, "stored since the run's last deployment");

  const gone = carriedHistory("w2", t({}), before);
  assert.equal([gone.restarts, gone.notCounted, gone.rebalances, gone.cause], [3, 2, before.rebalances, "leader worker w1 crashed"]);
  assert.is(gone.failures.length, 2);
  assert.match(gone.failures[1]!.error, /^leader worker w1 is gone .*; worker w2 took over the running job/);
  const expired = carriedHistory("w2", t({ why: "expired" }), undefined);
  assert.equal([expired.restarts, expired.notCounted, expired.cause], [1, 1, "leader worker w1 lost its lease"]);
  assert.match(expired.failures[0]!.error, /lost its lease \(no append to the job log for 3000 ms/);
  const left = carriedHistory("w2", t({ why: "released" }), before);
  assert.equal([left.restarts, left.failures, left.cause], [2, before.failures, "leader worker w1 left"], "a leader that left hands over: no restart");
});

s.run();
