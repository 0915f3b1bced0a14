// `weir dead-letters <job>`: a job's rejected records listed with their reasons, replayed to where they
// came from (from the source stream, whole, while it holds them) and purged; letters that cannot be
// replayed are named and fail the command.
import { suite } from "uvu";
import * as assert from "uvu/assert";
import * as t from "io-ts";
import { connect, type NatsConnection } from "@nats-io/transport-node";
import { jetstreamManager } from "@nats-io/jetstream";
import { withServer } from "./helpers/nats-server.ts";
import { eventually, runWeir, within } from "./helpers/cli.ts";
import { createStream, publishAll } from "./helpers/streams.ts";
import { StreamEnvironment } from "../runtime/api/environment.ts";
import { Sources } from "../runtime/sources/mod.ts";
import { Sinks } from "../runtime/sinks/mod.ts";
import { DeadLetterPublisher } from "../actors/subtask/dead-letters.ts";
import { JobNames } from "../runtime/core/names.ts";

const s = suite("weir dead-letters");
const server = withServer(s);
let nc: NatsConnection;
s.before(async () => { nc = await connect({ servers: server.url }); });
s.after(async () => { await nc?.close(); });

const cli = (args: string[]) => runWeir(["dead-letters", ...args, "--nats", server.url], { deadlineMs: 60_000 });
interface Listed { seq: number; reason: string; origin: string; stream?: string; sequence?: number; subject?: string; data: string; truncated?: boolean; replay?: { replayed?: string; skipped?: string }; purged?: boolean }

s("a job's rejected records: listed with reason and origin, replayed from the source stream once, purged", async () => {
  await createStream(nc, "DQ_IN", ["dq.in"]);
  const big = `{"id":"${"x".repeat(1_045_000)}"}`; // within max_payload, too big for a letter with its envelope: the letter keeps its first part
  await publishAll(nc, [["dq.in", { id: 1 }], ["dq.in", "{not json"], ["dq.in", { id: "seven" }], ["dq.in", { id: 2 }], ["dq.in", big]]);
  const env = StreamEnvironment.create({ name: "dqjob", nats: server.url, stateBackend: "heap", parallelism: 1, mode: "streaming" });
  env.fromSource(Sources.jetstream({ stream: "DQ_IN", subjects: ["dq.in"], codec: t.type({ id: t.number }) }), { name: "in" })
    .sinkTo(Sinks.jetstream({ stream: "DQ_OUT", subject: "dq.out" }), { name: "out" });
  const jsm = await jetstreamManager(nc);
  try {
    const client = await env.executeAsync();
    await eventually("the job's three dead letters stored", 60_000, async () => ((await jsm.streams.info("weir_dqjob_dlq").catch(() => undefined))?.state.messages === 3 ? true : undefined));
    await within(client.stop(), 60_000);
  } finally {
    await env.close();
  }

  const listed = await cli(["dqjob", "--json"]);
  assert.is(listed.code, 0, listed.stderr);
  const letters = JSON.parse(listed.stdout) as Listed[];
  assert.equal(letters.map((l) => l.sequence), [2, 3, 5]);
  assert.ok(letters.every((l) => l.stream === "DQ_IN" && l.subject === "dq.in" && l.origin.startsWith("in")), listed.stdout.slice(0, 500));
  assert.match(letters[1]!.reason, /id/);
  assert.is(letters[0]!.data, "{not json");
  assert.is(letters[2]!.truncated, true);

  const text = await cli(["dqjob", "--last", "2"]);
  assert.is(text.code, 0, text.stderr);
  assert.match(text.stdout, /#2 \S+ in .*\(stream DQ_IN sequence 3, subject dq\.in\)\n  reason: .*id.*"seven"\n  data: \{"id":"seven"\}\n/, text.stdout.slice(0, 600));
  assert.match(text.stdout, /\(truncated: 1045009 bytes originally\)/);
  assert.match(text.stdout, /2 dead letters of dqjob; 1 earlier not shown \(--last 3 lists them\)/);

  const replayed = await cli(["dqjob", "--replay", "--json"]);
  assert.is(replayed.code, 0, replayed.stdout + replayed.stderr);
  const again = await cli(["dqjob", "--replay"]);
  assert.is(again.code, 0, again.stderr);
  // Replayed once into the source stream (the second replay's ids were duplicates), the big record whole.
  const info = await jsm.streams.info("DQ_IN");
  assert.is(info.state.messages, 8);
  const bigAgain = await jsm.streams.getMessage("DQ_IN", { seq: 8 });
  assert.is(bigAgain?.string(), big);
  assert.is(bigAgain?.header.get("Weir-Replayed-From"), "weir_dqjob_dlq:3");
  assert.is((await jsm.streams.getMessage("DQ_IN", { seq: 6 }))?.string(), "{not json");

  const purged = await cli(["dqjob", "--replay", "--purge"]);
  assert.is(purged.code, 0, purged.stderr);
  assert.match(purged.stdout, /3 purged/);
  assert.is((await jsm.streams.info("DQ_IN")).state.messages, 8, "a purge's replay was stored again");
  const empty = await cli(["dqjob"]);
  assert.match(empty.stdout, /dqjob: no dead letters/);
});

s("letters without a subject, or cut short with the original gone, are named and fail the replay; --to sends them", async () => {
  const publisher = new DeadLetterPublisher(nc, new JobNames("dqfile"), () => {});
  const letters = publisher.forSubtask("");
  letters.publish({ reason: "bad row", origin: "file#0", line: 12, data: "a,b,,c" });
  letters.publish({ reason: "too deep", origin: "gone#0", stream: "DQ_GONE", sequence: 9, subject: "dq.gone", data: "x".repeat(2_000_000) });
  await letters.stored();
  const skipped = await cli(["dqfile", "--replay"]);
  assert.is(skipped.code, 1, skipped.stdout);
  assert.match(skipped.stdout, /not replayed: the record came from line 12 of a file, not a subject: give --to <subject>/);
  assert.match(skipped.stdout, /not replayed: the letter holds only the first part of the record \(2000000 bytes\) and stream DQ_GONE no longer has sequence 9/);
  assert.match(skipped.stdout, /0 replayed, 2 not/);

  const got: string[] = [];
  const sub = nc.subscribe("dq.fixed", { callback: (_e, m) => { got.push(m.string()); } });
  try {
    const sent = await cli(["dqfile", "--last", "2", "--replay", "--to", "dq.fixed", "--purge"]);
    assert.is(sent.code, 1, sent.stdout + sent.stderr);
    assert.match(sent.stdout, /replayed to dq\.fixed/, sent.stdout);
    assert.match(sent.stdout, /1 replayed, 1 not; 1 purged/);
    await eventually("the core NATS subscriber gets the replayed line", 10_000, () => (got.length === 1 ? true : undefined));
    assert.equal(got, ["a,b,,c"]);
  } finally {
    sub.unsubscribe();
  }
});

s("bad flags and a job without letters get one line", async () => {
  const to = await cli(["nojob", "--to", "x.y"]);
  assert.is(to.code, 1);
  assert.match(to.stderr, /^weir: dead-letters: --to names where --replay publishes; give --replay too\n$/);
  const wild = await cli(["nojob", "--replay", "--to", "x.>"]);
  assert.match(wild.stderr, /--to "x\.>" is not a subject to publish to/);
  const none = await cli(["nojob"]);
  assert.is(none.code, 0, none.stderr);
  assert.is(none.stdout, "nojob: no dead letters (no stream weir_nojob_dlq on this NATS)\n");
});

s.run();
