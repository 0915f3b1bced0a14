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
import { formatLastStatus, readLastStatus } from "../actors/job/last-status.ts";

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

s.run();
