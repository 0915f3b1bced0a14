// A restart must never go on from a `latest` checkpoint older than one the run itself committed: that
// checkpoint's output was published, and restarting before it publishes the output after it again. On a
// three-node 2.9.10 cluster a restart once read no `latest` at all (the bucket's new stream leader lacked
// acknowledged writes) and the job started over from the beginning, every commit after it refused. Here a
// purge of `latest` stands in for such a leader: the commit it refuses restarts the job, the restart waits
// while `latest` reads behind, and goes on once `latest` is back, with each record's output once.
// Likewise a takeover's restore of the checkpoint the job log recorded (actors/worker/takeover-restore.ts)
// reads it again while the bucket misses it.
import { suite } from "uvu";
import * as assert from "uvu/assert";
import * as t from "io-ts";
import { connect, type NatsConnection } from "@nats-io/transport-node";
import { jetstream, jetstreamManager } from "@nats-io/jetstream";
import { withServer } from "./helpers/nats-server.ts";
import { createStream, publishAll, readStream } from "./helpers/streams.ts";
import { eventually } from "./helpers/cli.ts";
import { StreamEnvironment } from "../runtime/api/environment.ts";
import { Sources } from "../runtime/sources/mod.ts";
import { Sinks } from "../runtime/sinks/mod.ts";
import { CheckpointStore } from "../runtime/checkpoint/store.ts";
import { JobNames } from "../runtime/core/names.ts";
import { systemClock } from "../runtime/core/clock.ts";
import { resolveJobOptions } from "../runtime/api/options.ts";
import { loadRestore } from "../actors/job/job-checkpoints.ts";

const s = suite("checkpoint latest behind");
const server = withServer(s);
let nc: NatsConnection;
s.before(async () => { nc = await connect({ servers: server.url }); });
s.after(async () => { await nc?.close(); });

const records = (from: number, n: number): Array<[string, unknown]> => Array.from({ length: n }, (_, i) => ["lb.in", { id: from + i }]);

s("a restart waits while `latest` reads older than this run's last commit, then goes on from it, output once", async () => {
  await createStream(nc, "LB_IN", ["lb.in"]);
  await publishAll(nc, records(0, 200));
  const lines: string[] = [];
  const env = StreamEnvironment.create({
    name: "lb", nats: server.url, stateBackend: "heap", parallelism: 1, checkpointIntervalMs: 100,
    restartStrategy: { type: "fixed-delay", attempts: 5, delayMs: 100 },
  }, { log: (line: string) => { lines.push(line); } });
  env.fromSource(Sources.jetstream({ stream: "LB_IN", subjects: ["lb.in"], codec: t.type({ id: t.number }) }), { uid: "in" })
    .map((r) => r, { uid: "same" })
    .sinkTo(Sinks.jetstream({ stream: "LB_OUT", subject: "lbout.all" }), { uid: "out" });
  const client = await env.executeAsync();
  try {
    const outputs = async () => (await (await jetstreamManager(nc)).streams.info("LB_OUT").catch(() => undefined))?.state.messages ?? 0;
    await eventually("the first 200 outputs committed", 60_000, async () => ((await outputs()) >= 200 ? true : undefined));
    const jsm = await jetstreamManager(nc);
    const subject = "$KV.weir_lb_ckpt.latest";
    const saved = await jsm.streams.getMessage("KV_weir_lb_ckpt", { last_by_subj: subject });
    assert.ok(saved, "a latest checkpoint is stored");
    // What a stream leader missing acknowledged writes answers: no `latest`.
    await jsm.streams.purge("KV_weir_lb_ckpt", { filter: subject });
    await publishAll(nc, records(200, 100));
    await eventually("the restart waiting for `latest`", 60_000, () => (lines.some((l) => /reads as none, but this run committed checkpoint \d+/.test(l)) ? true : undefined));
    // The leader has caught up: `latest` reads as before (as a new revision: a restart goes on from it).
    await jetstream(nc).publish(subject, saved!.data);
    await eventually("all 300 outputs", 60_000, async () => ((await outputs()) >= 300 ? true : undefined));
    assert.not.ok(lines.some((l) => /from the beginning/.test(l)), `never restarted from the beginning:\n${lines.join("\n")}`);
    await new Promise((r) => setTimeout(r, 500)); // a duplicate would come with the next commit
    const out = await readStream<{ id: number }>(nc, "LB_OUT");
    assert.equal(out.map((o) => o.id).sort((a, b) => a - b), Array.from({ length: 300 }, (_, i) => i), "each record's output once");
  } finally {
    await client.stop().catch(() => {});
    await env.close();
  }
});

s("a restore of a checkpoint the job log recorded as committed reads it again while the bucket misses it (a takeover meeting a stream leader behind)", async () => {
  const store = await CheckpointStore.open(nc, new JobNames("lbr"));
  await store.commit({ job: "lbr", id: 1, kind: "checkpoint", triggeredAt: 1, completedAt: 1, maxParallelism: 128, parallelism: { a: 1 }, subtasks: [] }, 0);
  const jsm = await jetstreamManager(nc);
  const stream = "KV_weir_lbr_ckpt";
  const subject = Object.keys((await jsm.streams.info(stream, { subjects_filter: "$KV.weir_lbr_ckpt.checkpoint.*" })).state.subjects ?? {})[0]!;
  const saved = await jsm.streams.getMessage(stream, { last_by_subj: subject });
  assert.ok(saved, `checkpoint 1 is stored under ${subject}`);
  // What a stream leader missing acknowledged writes answers: no checkpoint 1.
  await jsm.streams.purge(stream, { filter: subject });
  const job = resolveJobOptions({ name: "lbr", checkpointIntervalMs: 100 });
  assert.match(await loadRestore(store, job, 1, undefined).then(() => "restored", (e: Error) => e.message), /checkpoint 1 of job lbr does not exist/, "an id a user asked for fails at once");
  const lines: string[] = [];
  // Settled either way, so that a failure cannot go unhandled (it would end the process before the server is stopped).
  const restored = loadRestore(store, job, 1, undefined, { clock: systemClock, log: (l) => lines.push(l) }).catch((e: Error) => e);
  await eventually("the restore reading again", 10_000, () => (lines.length > 0 ? true : undefined));
  await jetstream(nc).publish(subject, saved!.data); // the leader has caught up
  const result = await restored;
  assert.ok(!(result instanceof Error), `restored: ${String(result)}`);
  assert.is(result?.id, 1);
  assert.match(lines[0]!, /checkpoint 1 of job lbr is not in weir_lbr_ckpt yet, though the job log recorded its commit/);
});

s.run();
