// A run started without restoring state (`--restore none`) is a new run: the malformed records it reads
// again are its own dead letters, stored and counted, though the last run's letters of the same records
// are within the stream's duplicate window. A run that restores a checkpoint (after a cancel), or restarts
// without a lost worker, continues its lineage: the letters of the records it reads again are stored once.
// So does a run after one killed before its first checkpoint (it reads the same records again).
import { suite } from "uvu";
import * as assert from "uvu/assert";
import * as t from "io-ts";
import { connect, type NatsConnection } from "@nats-io/transport-node";
import { jetstreamManager } from "@nats-io/jetstream";
import { withServer } from "./helpers/nats-server.ts";
import { eventually, killWeir, runWeir, startWeir, within } from "./helpers/cli.ts";
import { fetchStatus } from "../runtime/cli/commands/control.ts";
import { createStream, publishAll } from "./helpers/streams.ts";
import { StreamEnvironment } from "../runtime/api/environment.ts";
import { Sources } from "../runtime/sources/mod.ts";
import { Sinks } from "../runtime/sinks/mod.ts";

const s = suite("dead letters of a run from scratch");
const server = withServer(s);
let nc: NatsConnection;
s.before(async () => { nc = await connect({ servers: server.url }); });
s.after(async () => { await nc?.close(); });

const JOB = "tests/fixtures/jobs/bounded-dlq.ts";
const stored = async (stream: string) => (await (await jetstreamManager(nc)).streams.info(stream).catch(() => undefined))?.state.messages ?? 0;

s("weir run --restore none twice over one malformed record: each run counts 1 dead letter, the stream keeps both", async () => {
  const job = "lnone";
  await createStream(nc, `${job}_IN`, [`${job}.in`]);
  await publishAll(nc, ["1", "oops", "2"].map((v) => [`${job}.in`, v] as [string, string]));
  for (const run of [1, 2]) {
    const done = await runWeir(["run", JOB, "--nats", server.url, "--restore", "none"], { env: { DLQ_JOB: job }, deadlineMs: 60_000 });
    assert.is(done.code, 0, `run ${run}: ${done.stderr.slice(-800)}`);
    assert.match(done.stdout, /, 2 out, 1 dead letter$/m, `run ${run}`);
  }
  assert.is(await stored(`weir_${job}_dlq`), 2);
  const listed = await runWeir(["dead-letters", job, "--json", "--nats", server.url], { deadlineMs: 30_000 });
  assert.equal((JSON.parse(listed.stdout) as Array<{ sequence?: number }>).map((l) => l.sequence), [2, 2]);
});

s("weir run killed before its first checkpoint, then run again: the records read again, their letter stored once", async () => {
  const job = "lkill";
  await createStream(nc, `${job}_IN`, [`${job}.in`]);
  await publishAll(nc, ["1", "oops", "2"].map((v) => [`${job}.in`, v] as [string, string]));
  const out: string[] = [];
  const sub = nc.subscribe(`${job}.out`, { callback: (_e, m) => { out.push(m.string()); } });
  // Unbounded, checkpoints far apart: the first run dies having published its letter and its output.
  const env = { DLQ_JOB: job, DLQ_BOUNDED: "false" };
  const start = () => startWeir(["run", JOB, "--nats", server.url, "--checkpoint-interval", "600000"], { env });
  const first = start();
  let second: ReturnType<typeof start> | undefined;
  try {
    await eventually("the first run's letter and output", 60_000, async () => ((await stored(`weir_${job}_dlq`)) === 1 && out.length === 2 ? true : undefined));
    first.child.kill("SIGKILL");
    await first.exited;
    second = start();
    await eventually("the second run reads the records again", 90_000, () => (out.length === 4 ? true : undefined));
    // A checkpoint is acknowledged only once the letters before it are stored (or found duplicates).
    assert.is((await runWeir(["stop", job, "--nats", server.url], { deadlineMs: 60_000 })).code, 0);
    await second.exited;
    assert.is(await stored(`weir_${job}_dlq`), 1, "the letter of the record both runs rejected");
  } finally {
    sub.unsubscribe();
    for (const p of [first, second]) if (p && p.child.exitCode === null) killWeir(p);
    await Promise.all([first, second].map((p) => p?.exited));
  }
});

s("on two workers, a restart without the follower re-reads the records it rejected: each letter stored once", async () => {
  const job = "lnw";
  await createStream(nc, `${job}_IN`, [`${job}.a`, `${job}.b`]);
  // Parallelism 2 over two subjects: each worker's source subtask reads one. No checkpoint: the restart
  // reads everything again, in the run's lineage.
  const env = { DLQ_JOB: job, DLQ_SUBJECTS: `${job}.a,${job}.b`, DLQ_BOUNDED: "false" };
  const start = () => startWeir(["run", JOB, "--nats", server.url, "--parallelism", "2", "--checkpoint-interval", "600000", "--restore", "none"], { env });
  const procs = [start(), start()];
  const out: string[] = [];
  const sub = nc.subscribe(`${job}.out`, { callback: (_e, m) => { out.push(m.string()); } });
  try {
    const st = await eventually("the job runs on both workers", 90_000, async () => {
      const x = await fetchStatus(nc, job).catch(() => undefined);
      return x?.state === "running" && x.workers?.length === 2 && x.workers.every((w) => w.subtasks.length > 0) ? x : undefined;
    });
    await publishAll(nc, [[`${job}.a`, "oops"], [`${job}.b`, "{"], [`${job}.a`, "1"], [`${job}.b`, "2"]]);
    await eventually("a letter from each worker", 30_000, async () => ((await stored(`weir_${job}_dlq`)) === 2 ? true : undefined));
    await eventually("both numbers out", 30_000, () => (out.length === 2 ? true : undefined));
    const follower = procs.find((p) => p.child.pid === st.workers!.find((w) => !w.leader)!.pid)!;
    follower.child.kill("SIGKILL");
    await follower.exited;
    // Each number follows a malformed record: both out again, both records were rejected again.
    await eventually("the leader alone reads both subjects again", 90_000, () => (out.length === 4 ? true : undefined));
    // A stop stores or drops every letter before the worker ends.
    assert.is((await runWeir(["stop", job, "--nats", server.url], { deadlineMs: 60_000 })).code, 0);
    await Promise.all(procs.map((p) => p.exited));
    assert.is(await stored(`weir_${job}_dlq`), 2);
  } finally {
    sub.unsubscribe();
    for (const p of procs) if (p.child.exitCode === null) killWeir(p);
    await Promise.all(procs.map((p) => p.exited));
  }
});

s("a run that restores the checkpoint of a cancelled run stores the letters it replays once; one from scratch stores them again", async () => {
  await createStream(nc, "LN_IN", ["ln.in"]);
  await publishAll(nc, [["ln.in", { id: 1 }]]);
  const start = (restore: "latest" | "none") => {
    const env = StreamEnvironment.create({ name: "lnjob", nats: server.url, stateBackend: "heap", parallelism: 1, mode: "streaming", checkpointIntervalMs: 600_000, restore });
    env.fromSource(Sources.jetstream({ stream: "LN_IN", subjects: ["ln.in"], codec: t.type({ id: t.number }) }), { name: "in" })
      .sinkTo(Sinks.nats({ subject: "ln.out" }), { name: "out" });
    return env;
  };
  const first = start("none");
  try {
    const client = await first.executeAsync();
    await eventually("the first record read", 30_000, () => (client.status().recordsIn >= 1 ? true : undefined));
    assert.ok(await within(client.triggerCheckpoint(), 30_000) !== undefined, "the checkpoint before the malformed records");
    await publishAll(nc, [["ln.in", "{bad"], ["ln.in", { id: 2 }]]);
    await eventually("the letter stored", 30_000, () => (client.status().deadLetters === 1 ? true : undefined));
    // No checkpoint after the letter: the next run reads its record again, as after a crash.
    await client.cancel();
  } finally {
    await first.close();
  }
  // Restored: only { id: 2 } is read again (a malformed record is not counted in); from scratch both are.
  for (const [restore, read, letters, total] of [["latest", 1, 0, 1], ["none", 2, 1, 2]] as const) {
    const env = start(restore);
    try {
      const client = await env.executeAsync();
      await eventually(`--restore ${restore}: the records read`, 30_000, () => (client.status().recordsIn >= read ? true : undefined));
      // A checkpoint is acknowledged only once the letters before it are stored (or found duplicates).
      assert.ok(await within(client.triggerCheckpoint(), 30_000) !== undefined, `--restore ${restore}: a checkpoint`);
      assert.is(client.status().deadLetters, letters, `--restore ${restore}: dead letters counted`);
      assert.is(await stored("weir_lnjob_dlq"), total, `--restore ${restore}: dead letters stored`);
      await client.cancel();
    } finally {
      await env.close();
    }
  }
});

s.run();
