import { suite } from "uvu";
import * as assert from "uvu/assert";
import { connect, type NatsConnection } from "@nats-io/transport-node";
import { jetstream, jetstreamManager, type JsMsg } from "@nats-io/jetstream";
import { withServer } from "./helpers/nats-server.ts";
import { Sinks } from "../runtime/sinks/mod.ts";
import type { JetStreamSinkWriter } from "../runtime/sinks/jetstream.ts";
import type { ExactlyOnceJetStreamWriter } from "../runtime/sinks/jetstream-exactly-once.ts";
import { standaloneContext } from "./helpers/standalone-context.ts";
import { ErrorCode, WeirError } from "../runtime/core/errors.ts";
import { Sources } from "../runtime/sources/mod.ts";
import { StreamEnvironment } from "../runtime/api/environment.ts";
import { within } from "./helpers/cli.ts";

const s = suite("Sinks.jetstream");
const server = withServer(s);
let nc: NatsConnection;
s.before(async () => { nc = await connect({ servers: server.url }); });
s.after(async () => { await nc?.close(); });

async function readStream(stream: string, n: number): Promise<JsMsg[]> {
  const c = await jetstream(nc).consumers.get(stream);
  const out: JsMsg[] = [];
  for await (const m of await c.fetch({ max_messages: n, expires: 2000 })) out.push(m);
  return out;
}

interface Count { word: string; n: number }

s("a created stream captures a fixed subject alone (streams of other jobs under the same first token do not overlap it), or a function's subjects under their first token", async () => {
  const make = async (stream: string, subject: string | ((v: string) => string)) => {
    const w = await Sinks.jetstream({ stream, subject }).createWriter(standaloneContext({ nc, job: stream.toLowerCase() }));
    await w.write("a", undefined);
    await w.flush();
    return (await (await jetstreamManager(nc)).streams.info(stream)).config.subjects;
  };
  assert.equal(await make("FIXED_A", "shared.fixed.a"), ["shared.fixed.a"]);
  assert.equal(await make("FIXED_B", "shared.fixed.b"), ["shared.fixed.b"], "created beside the other (no overlap with shared.>)");
  assert.equal(await make("BYFUNC", (v) => `byfunc.${v}.k1`), ["byfunc.>"], "a function's later subjects may differ in any token");
});

s("a stream weir would create on subjects another stream holds fails in one line saying to create it", async () => {
  // examples/nats-secured.conf's job: input APP_IN on app.in.>, output APP_OUT from `app.out.${word}`,
  // created on app.> (its first token): the job went through its whole restart strategy (minutes).
  await (await jetstreamManager(nc)).streams.add({ name: "OVL_IN", subjects: ["ovl.in.>"] });
  const w = await Sinks.jetstream({ stream: "OVL_OUT", subject: (v: string) => `ovl.out.${v}` }).createWriter(standaloneContext({ nc, job: "ovl" }));
  try {
    const err = await within((async () => { try { await w.write("a", undefined); await w.flush(); return undefined; } catch (e) { return e; } })(), 30_000);
    assert.instance(err, WeirError);
    // A sink failure: the restart strategy applies (a restart goes through once the stream is created).
    assert.is((err as WeirError).code, ErrorCode.Sink);
    assert.match((err as Error).message, /^Sinks\.jetstream: cannot create stream "OVL_OUT" for ovl\.>: .*overlap.*; create "OVL_OUT" yourself with the subjects it should capture/);
  } finally {
    await w.close().catch(() => {});
  }
});

s("two sinks of a job creating one stream at once for different fixed subjects: it captures both, and both write", async () => {
  // Both found no stream and tried to create it: the loser took "already there" for success, and in batch
  // mode failed after writing part of its output with "no stream captures this subject"; then it failed
  // at once naming the stream's subjects, though the stream was the job's own.
  const w1 = await Sinks.jetstream({ stream: "RACE", subject: "race.sum" }).createWriter(standaloneContext({ nc, job: "race", operatorUid: "sums" }));
  const w2 = await Sinks.jetstream({ stream: "RACE", subject: "race.win" }).createWriter(standaloneContext({ nc, job: "race", operatorUid: "wins" }));
  const outcome = async (w: typeof w1) => {
    try { await w.write("x", undefined); await w.flush(); return "ok"; } catch (e) { return (e as Error).message; }
  };
  try {
    const results = await within(Promise.all([outcome(w1), outcome(w2)]), 30_000);
    assert.equal(results, ["ok", "ok"]);
    const info = await (await jetstreamManager(nc)).streams.info("RACE");
    assert.equal([...(info.config.subjects ?? [])].sort(), ["race.sum", "race.win"]);
    assert.is(info.state.messages, 2);
  } finally {
    await w1.close();
    await w2.close();
  }
  // Another job's sink does not change the stream: it fails naming the stream's subjects.
  const other = await Sinks.jetstream({ stream: "RACE", subject: "race.other" }).createWriter(standaloneContext({ nc, job: "notrace", operatorUid: "o" }));
  try {
    assert.match(await within(outcome(other), 30_000) ?? "unsettled", /^Sinks\.jetstream: stream "RACE" does not capture subject "race\.other" \(its subjects: (?:race\.sum, race\.win|race\.win, race\.sum)\); add the subject to the stream/);
  } finally {
    await other.close();
  }
});

s("creates the stream from the first subject, publishes JSON with deterministic msg ids, flush awaits acks", async () => {
  const sink = Sinks.jetstream({ stream: "COUNTS", subject: (o: Count) => `counts.${o.word}` });
  const writer = await sink.createWriter(standaloneContext({ nc, job: "wc", operatorUid: "sink", subtaskIndex: 1, parallelism: 2 })) as JetStreamSinkWriter<Count>;
  for (let i = 0; i < 2500; i++) {
    const p = writer.write({ word: `w${i % 5}`, n: i }, undefined);
    if (p) await p;
  }
  await writer.flush();
  const info = await (await jetstreamManager(nc)).streams.info("COUNTS");
  assert.equal(info.config.subjects, ["counts.>"], "subjects derived from counts.w0");
  assert.is(info.state.messages, 2500);
  const msgs = await readStream("COUNTS", 2500);
  assert.is(msgs.length, 2500);
  assert.equal(msgs[7]!.json(), { word: "w2", n: 7 });
  assert.is(msgs[7]!.subject, "counts.w2");
  const { epoch, sequence } = writer.snapshotState();
  assert.is(sequence, 2500);
  assert.is(msgs[0]!.headers?.get("Nats-Msg-Id"), `wc:sink:1:${epoch}:1`);
  assert.is(msgs[2499]!.headers?.get("Nats-Msg-Id"), `wc:sink:1:${epoch}:2500`);
  await writer.close();
});

s("a re-publish with the same id is deduplicated; a writer restored from a snapshot replays without duplicates", async () => {
  const sink = Sinks.jetstream({ stream: "DEDUP", subject: "dedup.out" });
  const ctx = () => standaloneContext({ nc, job: "dd", operatorUid: "sink" });
  const w1 = await sink.createWriter(ctx()) as JetStreamSinkWriter<number>;
  for (let i = 1; i <= 100; i++) await w1.write(i, undefined);
  await w1.flush();
  const checkpoint = w1.snapshotState();
  for (let i = 101; i <= 150; i++) await w1.write(i, undefined);
  await w1.flush();
  // A crash after record 150; recovery restores the checkpoint taken after record 100 and replays.
  const w2 = await sink.createWriter({ ...ctx(), restoredState: JSON.parse(JSON.stringify(checkpoint)) } as never) as JetStreamSinkWriter<number>;
  for (let i = 101; i <= 200; i++) await w2.write(i, undefined);
  await w2.flush();
  assert.is(w2.duplicates, 50, "records 101..150 were dropped by the duplicate window");
  const msgs = await readStream("DEDUP", 300);
  assert.equal(msgs.map((m) => m.json()), Array.from({ length: 200 }, (_, i) => i + 1), "each record once, in order");

  const ack = await jetstream(nc).publish("dedup.out", "1", { msgID: msgs[0]!.headers!.get("Nats-Msg-Id") });
  assert.ok(ack.duplicate, "the server reports the duplicate");
  assert.is((await (await jetstreamManager(nc)).streams.info("DEDUP")).state.messages, 200);

  // A fresh writer (no restored state) never collides with the ids of the run before it.
  const w3 = await sink.createWriter(ctx()) as JetStreamSinkWriter<number>;
  await w3.write(201, undefined);
  await w3.flush();
  assert.is(w3.duplicates, 0);
  assert.is((await (await jetstreamManager(nc)).streams.info("DEDUP")).state.messages, 201);
});

s("exactly-once: a restore does not publish a committed checkpoint's output again, even once the stream forgot its ids", async () => {
  // The duplicate window is the only guard left for output published and then re-published at a restore;
  // a short one stands in for a stream that has lost its ids (expired, or a replica that lost them).
  const sink = Sinks.jetstream({ stream: "EOR", subject: "eor.out", delivery: "exactly-once", duplicateWindowMs: 200 });
  // The staging stream's window short too, for the reused checkpoint id at the end (within it, a chunk
  // staged again under a used id is taken for a retry).
  await (await jetstreamManager(nc)).streams.add({ name: "weir_eor_staging", subjects: ["weir.eor.staging.>"], duplicate_window: 200_000_000 });
  const ctx = (restored?: unknown) => standaloneContext({ nc, job: "eor", operatorUid: "sink", checkpointing: true, ...(restored ? { restoredState: [{ index: 0, parallelism: 1, state: JSON.parse(JSON.stringify(restored)) }] } : {}) });
  const w1 = await sink.createWriter(ctx()) as ExactlyOnceJetStreamWriter<number>;
  for (let i = 1; i <= 10; i++) await w1.write(i);
  const state1 = await w1.snapshotState(1);
  await w1.notifyCheckpointComplete(1);
  await w1.flush();
  for (let i = 11; i <= 15; i++) await w1.write(i);
  // Checkpoint 2 completes, but the writer dies before it hears so: its output is staged, not published.
  const state2 = await w1.snapshotState(2);
  await w1.close();
  assert.is((await (await jetstreamManager(nc)).streams.info("EOR")).state.messages, 10, "checkpoint 1's output published");
  await new Promise((r) => setTimeout(r, 400)); // the stream's duplicate window has passed

  // A restore from checkpoint 1 (its output was committed): nothing is published again.
  const w2 = await sink.createWriter(ctx(state1)) as ExactlyOnceJetStreamWriter<number>;
  await w2.close();
  assert.is((await (await jetstreamManager(nc)).streams.info("EOR")).state.messages, 10, "checkpoint 1's output not published twice");

  // A restore from checkpoint 2: its staged output is published once, now.
  const w3 = await sink.createWriter(ctx(state2)) as ExactlyOnceJetStreamWriter<number>;
  await w3.close();
  assert.is((await (await jetstreamManager(nc)).streams.info("EOR")).state.messages, 15, "checkpoint 2's output published at the restore");

  // Checkpoint ids start again at 1 when the job's checkpoint bucket is deleted: the record of the run
  // before (checkpoint 2 published) must not hide a new checkpoint 1's output.
  const w4 = await sink.createWriter(ctx()) as ExactlyOnceJetStreamWriter<number>;
  for (let i = 16; i <= 17; i++) await w4.write(i);
  const again1 = await w4.snapshotState(1);
  await w4.close();
  await new Promise((r) => setTimeout(r, 400)); // (its message ids are those of the first checkpoint 1)
  const w5 = await sink.createWriter(ctx(again1)) as ExactlyOnceJetStreamWriter<number>;
  await w5.close();
  const msgs = await readStream("EOR", 100);
  assert.equal(msgs.map((m) => m.json()), Array.from({ length: 17 }, (_, i) => i + 1), "each record once, in order");
});

s("exactly-once: after a failed commit no later one runs, so a restore publishes the failed checkpoint's output (a later commit marked it published: lost)", async () => {
  const jsm = await jetstreamManager(nc);
  // A full stream refuses checkpoint 2's output; once it has room again, checkpoint 3's commit would succeed.
  await jsm.streams.add({ name: "EOF1", subjects: ["eof1.out"], max_msgs: 3, discard: "new" as never });
  const sink = Sinks.jetstream({ stream: "EOF1", subject: "eof1.out", delivery: "exactly-once" });
  const failures: unknown[] = [];
  const ctx = (restored?: unknown) => standaloneContext({ nc, job: "eof1", operatorUid: "sink", checkpointing: true, fail: (e) => { failures.push(e); }, ...(restored ? { restoredState: [{ index: 0, parallelism: 1, state: JSON.parse(JSON.stringify(restored)) }] } : {}) });
  const w1 = await sink.createWriter(ctx()) as ExactlyOnceJetStreamWriter<number>;
  const checkpoint = async (id: number, values: number[]) => { for (const v of values) await w1.write(v); return w1.snapshotState(id); };
  await checkpoint(1, [1, 2, 3]);
  await checkpoint(2, [4, 5]);
  const state3 = await checkpoint(3, [6]);
  await w1.notifyCheckpointComplete(1);
  await w1.notifyCheckpointComplete(2);
  const failed = await w1.flush().then(() => undefined, (e: Error) => e.message);
  assert.match(failed ?? "", /committing the output of checkpoint 2 failed/);
  await jsm.streams.update("EOF1", { ...(await jsm.streams.info("EOF1")).config, max_msgs: -1 });
  await w1.notifyCheckpointComplete(3);
  await w1.close().catch(() => {});
  assert.is((await jsm.streams.info("EOF1")).state.messages, 3, "checkpoint 3 was not committed after 2 failed");
  // The restart restores checkpoint 3, whose state lists 2's and 3's staged output: both are published now.
  const w2 = await sink.createWriter(ctx(state3)) as ExactlyOnceJetStreamWriter<number>;
  await w2.close();
  const msgs = await readStream("EOF1", 100);
  assert.equal(msgs.map((m) => m.json()), [1, 2, 3, 4, 5, 6]);
  assert.is(failures.length, 1);
});

s("a subject function's subject that the named stream does not capture is a dead letter; the other records are published", async () => {
  const env = StreamEnvironment.create({ name: "uncaptured", nats: server.url, stateBackend: "heap", checkpointIntervalMs: 100, mode: "streaming" }, { log: () => {} });
  try {
    env.fromSource(Sources.array(Array.from({ length: 20 }, (_, i) => i)))
      .sinkTo(Sinks.jetstream({ stream: "UNCAPTURED", subject: (n: number) => (n === 7 ? `elsewhere.${n}` : `uncaptured.${n}`) }));
    const result = await within(env.execute(), 60_000);
    assert.ok(result, "the job finished");
    assert.is(result!.status.deadLetters, 1);
    assert.is((await (await jetstreamManager(nc)).streams.info("UNCAPTURED")).state.messages, 19);
    const letters = await readStream("weir_uncaptured_dlq", 5);
    assert.match(JSON.parse(letters[0]!.string()).reason, /returned "elsewhere\.7", which stream "UNCAPTURED" does not capture \(its subjects: uncaptured\.>\)/);
  } finally {
    await env.close();
  }
});

s("bounded in-flight: write returns a promise while the window is full", async () => {
  const writer = await Sinks.jetstream({ stream: "BP", subject: "bp.x", maxInFlight: 10 }).createWriter(standaloneContext({ nc }));
  await writer.write(0, undefined); // creates the stream
  let waits = 0;
  for (let i = 1; i < 100; i++) {
    const p = writer.write(i, undefined);
    if (p) { waits++; await p; }
  }
  await writer.flush();
  assert.ok(waits > 0, "backpressure happened");
  assert.is((await (await jetstreamManager(nc)).streams.info("BP")).state.messages, 100);
});

s("a stream that does not capture the sink's subject fails the job at once, not after its restart strategy", async () => {
  const jsm = await jetstreamManager(nc);
  await jsm.streams.add({ name: "OTHERS", subjects: ["others.>"] });
  const direct = await Sinks.jetstream({ stream: "OTHERS", subject: "mine.x" }).createWriter(standaloneContext({ nc }));
  const first = await Promise.resolve(direct.write("v", undefined)).then(() => direct.flush()).then(() => undefined, (e: unknown) => e);
  assert.instance(first, WeirError);
  assert.is((first as WeirError).code, ErrorCode.StreamConfig);
  assert.match((first as Error).message, /stream "OTHERS" does not capture subject "mine.x" \(its subjects: others.>\)/);
  // In a job with checkpoints (exactly-once, restarts on): one failure, no restarts.
  const env = StreamEnvironment.create({ name: "notcaptured", nats: server.url, stateBackend: "heap", checkpointIntervalMs: 200, mode: "streaming" });
  try {
    env.fromSource(Sources.array([1, 2, 3])).sinkTo(Sinks.jetstream({ stream: "OTHERS", subject: "mine.y" }));
    const ended = await within(env.execute().then(() => "finished", (e: Error) => e.message), 60_000);
    assert.ok(ended !== undefined, "the job was still restarting after 60 s");
    assert.match(ended!, /does not capture subject "mine.y"/);
  } finally {
    await env.close();
  }
});

s("with no stream named, a subject no stream captures fails the job at once with what to do (it failed after 30 s of retries, then again after every restart)", async () => {
  const direct = await Sinks.jetstream({ subject: "nostream.x" }).createWriter(standaloneContext({ nc }));
  const first = await Promise.resolve(direct.write("v", undefined)).then(() => direct.flush()).then(() => undefined, (e: unknown) => e);
  assert.instance(first, WeirError);
  assert.is((first as WeirError).code, ErrorCode.StreamConfig);
  assert.match((first as Error).message, /^Sinks.jetstream: no stream captures subject "nostream.x": create a stream for it, or name one with `stream`/);
  // In a job with checkpoints (exactly-once, restarts on): one failure, no restarts.
  const env = StreamEnvironment.create({ name: "nostream", nats: server.url, stateBackend: "heap", checkpointIntervalMs: 200, mode: "streaming" }, { log: () => {} });
  try {
    env.fromSource(Sources.array([1, 2, 3])).sinkTo(Sinks.jetstream({ subject: (n: number) => `nostream.${n}` }));
    const ended = await within(env.execute().then(() => "finished", (e: Error) => e.message), 120_000);
    assert.ok(ended !== undefined, "the job was still running after 120 s");
    assert.match(ended!, /no stream captures subject "nostream.1"/);
  } finally {
    await env.close();
  }
  // A subject a stream captures is published to as before.
  await (await jetstreamManager(nc)).streams.add({ name: "SOMESTREAM", subjects: ["somestream.>"] });
  const ok = await Sinks.jetstream({ subject: "somestream.x" }).createWriter(standaloneContext({ nc }));
  await ok.write("v", undefined);
  await ok.flush();
  assert.is((await (await jetstreamManager(nc)).streams.info("SOMESTREAM")).state.messages, 1);
});

s("publish errors name the stream and the subject", async () => {
  const jsm = await jetstreamManager(nc);
  await jsm.streams.add({ name: "NARROW", subjects: ["narrow.>"] });
  // A full stream that refuses new messages: the second publish fails.
  await jsm.streams.add({ name: "FULL", subjects: ["full.>"], max_msgs: 1, discard: "new" as never });
  const w = await Sinks.jetstream({ stream: "FULL", subject: (v: string) => v }).createWriter(standaloneContext({ nc }));
  await w.write("full.ok", undefined);
  await w.flush();
  await w.write("full.x", undefined);
  const err = await w.flush().catch((e) => e);
  assert.instance(err, WeirError);
  assert.match(err.message, /^Sinks.jetstream: publish to stream "FULL", subject "full.x" failed: /);
  assert.throws(() => w.write("full.again", undefined), /full.x/, "the failure sticks");

  // A subject a record's data makes unpublishable (a wildcard, an empty token, too long): that record is a
  // dead letter with the reason, the others go on (README's word count with the input "foo..bar").
  const ctx = standaloneContext({ nc, job: "badsubj" });
  const bad = await Sinks.jetstream({ stream: "NARROW", subject: (v: string) => v }).createWriter(ctx);
  for (const v of ["a.*", "narrow.x..y", `narrow.${"k".repeat(5000)}`, "narrow.fine"]) await bad.write(v, undefined);
  await bad.flush();
  assert.is(ctx.deadLetters.count, 3);
  await ctx.publisher.flush();
  const c = await jetstream(nc).consumers.get("weir_badsubj_dlq");
  const reasons: string[] = [];
  for await (const m of await c.fetch({ max_messages: 3, expires: 2000 })) reasons.push(String(m.json<{ reason: string }>().reason));
  assert.match(reasons[0]!, /subject function returned "a\.\*": wildcards cannot be published to/);
  assert.match(reasons[1]!, /subjects are dot-separated non-empty tokens/);
  assert.match(reasons[2]!, /a subject of 5007 bytes is longer than weir publishes/);
  assert.ok(reasons.every((r) => r.length < 600), "reasons show a bounded preview of the subject");
  assert.ok(nc.info, "the connection stayed up");
  assert.throws(() => Sinks.jetstream({ subject: "a..b" }), /Sinks.jetstream: subject "a..b"/);
});

s.run();
