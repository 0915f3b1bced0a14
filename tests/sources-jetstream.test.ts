import { suite } from "uvu";
import * as assert from "uvu/assert";
import * as t from "io-ts";
import { connect, type NatsConnection } from "@nats-io/transport-node";
import { jetstream, jetstreamManager } from "@nats-io/jetstream";
import { withServer } from "./helpers/nats-server.ts";
import { Sources } from "../runtime/sources/mod.ts";
import { standaloneContext } from "./helpers/standalone-context.ts";
import { within } from "./helpers/cli.ts";
import { ConsumerLane } from "../runtime/sources/jetstream-lane.ts";
import type { SourceReader } from "../runtime/contracts/connectors.ts";
import { WeirError } from "../runtime/core/errors.ts";

const s = suite("Sources.jetstream");
const server = withServer(s);
let nc: NatsConnection;
s.before(async () => { nc = await connect({ servers: server.url }); });
s.after(async () => { await nc?.close(); });

async function makeStream(name: string, subjects: string[]): Promise<void> {
  const jsm = await jetstreamManager(nc);
  await jsm.streams.add({ name, subjects });
}

async function publish(subject: string, payloads: unknown[], raw = false): Promise<number[]> {
  const js = jetstream(nc);
  const seqs: number[] = [];
  for (let i = 0; i < payloads.length; i += 256) {
    const acks = await Promise.all(payloads.slice(i, i + 256).map((p) => js.publish(subject, raw ? String(p) : JSON.stringify(p))));
    seqs.push(...acks.map((a) => a.seq));
  }
  return seqs;
}

/** Polls until the reader ends (bounded) or `count` records arrived; fails after `ms`. */
async function readAll<T>(reader: SourceReader<T>, count = Infinity, ms = 10_000): Promise<{ values: T[]; ended: boolean }> {
  const values: T[] = [];
  const deadline = Date.now() + ms;
  while (values.length < count) {
    if (Date.now() > deadline) throw new Error(`timed out with ${values.length} records`);
    const b = await reader.pollNext();
    if (b === null) return { values, ended: true };
    values.push(...b.values);
  }
  return { values, ended: false };
}

async function dlqLetters(job: string, expected: number): Promise<Array<Record<string, unknown>>> {
  const js = jetstream(nc);
  const deadline = Date.now() + 5000;
  for (;;) {
    try {
      const c = await js.consumers.get(`weir_${job}_dlq`);
      const out: Array<Record<string, unknown>> = [];
      const it = await c.fetch({ max_messages: expected, expires: 2000 });
      for await (const m of it) out.push(m.json());
      if (out.length >= expected || Date.now() > deadline) return out;
    } catch (e) {
      if (Date.now() > deadline) throw e;
    }
    await new Promise((r) => setTimeout(r, 100));
  }
}

s("bounded: reads everything from the first message and ends; timestamps are publish times", async () => {
  await makeStream("S1", ["s1.>"]);
  const before = Date.now();
  await publish("s1.a", Array.from({ length: 2500 }, (_, i) => ({ i })));
  const reader = await Sources.jetstream({ stream: "S1", subjects: ["s1.>"], bounded: true }).createReader(standaloneContext({ nc }));
  const got: Array<{ i: number }> = [];
  let ts: number[] = [];
  for (;;) {
    const b = await reader.pollNext();
    if (b === null) break;
    got.push(...(b.values as Array<{ i: number }>));
    ts = ts.concat((b.timestamps ?? []) as number[]);
  }
  assert.equal(got.map((v) => v.i), Array.from({ length: 2500 }, (_, i) => i));
  assert.ok(ts.every((x) => x >= before - 1000 && x <= Date.now() + 1000), "timestamps near publish time");
  assert.is(await reader.pollNext(), null, "stays ended");
  await reader.close();
});

s("bounded ends at what the stream held at start, even while more is published", async () => {
  await makeStream("S1B", ["s1b.>"]);
  await publish("s1b.a", Array.from({ length: 100 }, (_, i) => i));
  const reader = await Sources.jetstream({ stream: "S1B", subjects: ["s1b.a"], bounded: true }).createReader(standaloneContext({ nc }));
  await publish("s1b.a", Array.from({ length: 100 }, (_, i) => 100 + i));
  const { values, ended } = await readAll(reader);
  assert.ok(ended);
  assert.equal(values, Array.from({ length: 100 }, (_, i) => i));
  await reader.close();
});

s("startAt: a sequence, a time, and new", async () => {
  await makeStream("S2", ["s2.>"]);
  await publish("s2.a", [0, 1, 2, 3, 4]);
  const r1 = await Sources.jetstream({ stream: "S2", subjects: ["s2.a"], startAt: { sequence: 3 }, bounded: true }).createReader(standaloneContext({ nc }));
  assert.equal((await readAll(r1)).values, [2, 3, 4]);
  await r1.close();

  await new Promise((r) => setTimeout(r, 20));
  const mark = new Date();
  await new Promise((r) => setTimeout(r, 20));
  await publish("s2.a", [5, 6]);
  const r2 = await Sources.jetstream({ stream: "S2", subjects: ["s2.a"], startAt: { time: mark }, bounded: true }).createReader(standaloneContext({ nc }));
  assert.equal((await readAll(r2)).values, [5, 6]);
  assert.equal((r2.snapshotState!(1) as { offsets: unknown }).offsets, { "s2.a": 7 });
  await r2.close();

  const r3 = await Sources.jetstream({ stream: "S2", subjects: ["s2.a"], startAt: "new" }).createReader(standaloneContext({ nc }));
  const first = await r3.pollNext();
  assert.equal(first?.values, [], "nothing new yet: an empty batch after a short wait");
  assert.equal((r3.snapshotState!(1) as { offsets: unknown }).offsets, { "s2.a": 7 }, "nothing read yet: the offset is where it starts");
  await publish("s2.a", [7]);
  assert.equal((await readAll(r3, 1)).values, [7]);
  await r3.close();
});

s("subjects split across 2 subtasks: each message read exactly once overall", async () => {
  await makeStream("S3", ["s3.>"]);
  const subjects = ["s3.a", "s3.b", "s3.c"];
  for (const subj of subjects) await publish(subj, Array.from({ length: 300 }, (_, i) => `${subj}:${i}`));
  const def = Sources.jetstream({ stream: "S3", subjects, bounded: true });
  const r0 = await def.createReader(standaloneContext({ nc, subtaskIndex: 0, parallelism: 2 }));
  const r1 = await def.createReader(standaloneContext({ nc, subtaskIndex: 1, parallelism: 2 }));
  const [a, b] = await Promise.all([readAll(r0), readAll(r1)]);
  const subjectsOf = (vs: unknown[]) => [...new Set(vs.map((v) => String(v).split(":")[0]))].sort();
  assert.equal(subjectsOf(a.values), ["s3.a", "s3.c"], "subject j → subtask j mod 2");
  assert.equal(subjectsOf(b.values), ["s3.b"]);
  const all = [...a.values, ...b.values].map(String);
  assert.is(all.length, 900);
  assert.is(new Set(all).size, 900);
  const snap0 = r0.snapshotState!(1) as { offsets: Record<string, number> };
  assert.equal(Object.keys(snap0.offsets).sort(), ["s3.a", "s3.c"]);
  await r0.close();
  await r1.close();
});

s("a subtask without subjects ends at once when bounded and idles otherwise", async () => {
  await makeStream("S4", ["s4.>"]);
  const bounded = await Sources.jetstream({ stream: "S4", subjects: ["s4.a"], bounded: true }).createReader(standaloneContext({ nc, subtaskIndex: 1, parallelism: 2 }));
  assert.is(await bounded.pollNext(), null);
  const live = await Sources.jetstream({ stream: "S4", subjects: ["s4.a"] }).createReader(standaloneContext({ nc, subtaskIndex: 1, parallelism: 2 }));
  // An empty batch, not a wait for input that never comes (a deadline, not a speed bound).
  assert.equal((await within(live.pollNext(), 10_000))?.values, [], "an empty batch when there is nothing to read");
  await bounded.close();
  await live.close();
});

s("snapshot then restore resumes right after the offsets: no loss, no duplicates", async () => {
  await makeStream("S5", ["s5.>"]);
  await publish("s5.a", Array.from({ length: 1000 }, (_, i) => `a${i}`));
  await publish("s5.b", Array.from({ length: 1000 }, (_, i) => `b${i}`));
  const def = Sources.jetstream({ stream: "S5", subjects: ["s5.a", "s5.b"] });
  const r1 = await def.createReader(standaloneContext({ nc }));
  const first = await readAll(r1, 700);
  const state = r1.snapshotState!(1);
  await r1.close();
  await publish("s5.a", Array.from({ length: 500 }, (_, i) => `a${1000 + i}`));
  const r2 = await Sources.jetstream({ stream: "S5", subjects: ["s5.a", "s5.b"], bounded: true })
    .createReader(standaloneContext({ nc, restoredState: JSON.parse(JSON.stringify(state)) }));
  const rest = await readAll(r2);
  assert.ok(rest.ended);
  const all = [...first.values, ...rest.values].map(String);
  assert.is(all.length, 2500, "every record once");
  assert.is(new Set(all).size, 2500, "no duplicates");
  await r2.close();

  // A rescale hands the states of several old subtasks over; the highest offset per subject wins.
  const r3 = await Sources.jetstream({ stream: "S5", subjects: ["s5.a"], bounded: true })
    .createReader(standaloneContext({ nc, restoredState: [{ stream: "S5", offsets: { "s5.a": 10 } }, { stream: "S5", offsets: { "s5.a": 1990 } }] }));
  assert.is((await readAll(r3)).values.length, 500, "the s5.a messages after sequence 1990 (2001..2500)");
  await r3.close();
});

s("a restore into a stream deleted and created again since the checkpoint is refused, saying so; its own stream restores", async () => {
  await makeStream("S11", ["s11.>"]);
  await publish("s11.a", Array.from({ length: 50 }, (_, i) => i));
  const r1 = await Sources.jetstream({ stream: "S11", subjects: ["s11.a"] }).createReader(standaloneContext({ nc }));
  await readAll(r1, 50);
  const state = JSON.parse(JSON.stringify(r1.snapshotState!(1)));
  await r1.close();
  const same = await Sources.jetstream({ stream: "S11", subjects: ["s11.a"], bounded: true }).createReader(standaloneContext({ nc, restoredState: state }));
  assert.is((await readAll(same)).values.length, 0, "nothing after the checkpoint's position");
  await same.close();
  const jsm = await jetstreamManager(nc);
  await jsm.streams.delete("S11");
  await makeStream("S11", ["s11.>"]);
  await publish("s11.a", Array.from({ length: 80 }, (_, i) => i));
  try {
    await Sources.jetstream({ stream: "S11", subjects: ["s11.a"], bounded: true }).createReader(standaloneContext({ nc, restoredState: state }));
    assert.unreachable("restored a position of the old stream into the new one");
  } catch (e) {
    assert.instance(e, WeirError);
    assert.match((e as Error).message, /stream "S11" was deleted and created again since the checkpoint being restored .*--restore none/);
  }
});

s("a stream with interest or work-queue retention is refused in one line: a replay from a checkpoint needs limits", async () => {
  const jsm = await jetstreamManager(nc);
  for (const [name, retention] of [["RINT", "interest"], ["RWQ", "workqueue"]] as const) {
    await jsm.streams.add({ name, subjects: [`${name.toLowerCase()}.>`], retention: retention as never });
    const err = await Sources.jetstream({ stream: name, subjects: [`${name.toLowerCase()}.a`] }).createReader(standaloneContext({ nc })).then(() => undefined, (e: unknown) => e);
    assert.instance(err, WeirError);
    assert.match((err as Error).message, new RegExp(`stream "${name}" has ${retention} retention; .*needs limits retention`));
  }
});

s("malformed JSON and codec failures go to the DLQ with reason, subject and sequence; reading goes on", async () => {
  await makeStream("S6", ["s6.>"]);
  const Event = t.type({ user: t.string, n: t.number }, "Event");
  const seqs = await publish("s6.e", [
    JSON.stringify({ user: "a", n: 1 }),
    "{not json",
    JSON.stringify({ user: "b", n: "two" }),
    JSON.stringify({ user: "c", n: 3 }),
  ], true);
  const ctx = standaloneContext({ nc, job: "dlqjob" });
  const reader = await Sources.jetstream({ stream: "S6", subjects: ["s6.e"], codec: Event, bounded: true }).createReader(ctx);
  const { values } = await readAll(reader);
  assert.equal(values, [{ user: "a", n: 1 }, { user: "c", n: 3 }]);
  // Counted once the dead-letter stream took them as new (a replay's duplicates are not).
  await ctx.deadLetters.stored();
  assert.is(ctx.deadLetters.count, 2, "counted");
  await ctx.publisher.flush();
  const letters = await dlqLetters("dlqjob", 2);
  assert.is(letters.length, 2);
  assert.match(String(letters[0]!.reason), /invalid JSON/);
  assert.is(letters[0]!.subject, "s6.e");
  assert.is(letters[0]!.sequence, seqs[1]);
  assert.is(letters[0]!.data, "{not json");
  assert.match(String(letters[1]!.reason), /codec Event: n: expected number, got "two"/);
  assert.is(letters[1]!.sequence, seqs[2]);
  await reader.close();
});

s("backlog attributes: true while far behind the head, then false once caught up, changes only", async () => {
  await makeStream("S7", ["s7.>"]);
  await publish("s7.a", Array.from({ length: 3000 }, (_, i) => i));
  const reader = await Sources.jetstream({ stream: "S7", subjects: ["s7.a"], backlogLag: 1000 }).createReader(standaloneContext({ nc }));
  const seen: boolean[] = [];
  let n = 0;
  const deadline = Date.now() + 10_000;
  while (Date.now() < deadline) {
    const a = reader.takeAttributes!();
    if (a) seen.push(a.isBacklog);
    const b = await reader.pollNext();
    n += b!.values.length;
    if (n >= 3000 && seen.length >= 2) break;
  }
  assert.is(n, 3000);
  assert.equal(seen, [true, false]);
  assert.is(reader.takeAttributes!(), undefined, "no change, nothing to report");
  await publish("s7.a", [1, 2, 3]);
  await readAll(reader, 3);
  assert.is(reader.takeAttributes!(), undefined, "a few new messages stay live");
  await reader.close();

  const caughtUp = await Sources.jetstream({ stream: "S7", subjects: ["s7.a"], startAt: "new" }).createReader(standaloneContext({ nc }));
  assert.equal(caughtUp.takeAttributes!(), { isBacklog: false }, "the first value at start");
  await caughtUp.close();
});

s("a missing stream and bad options are one-line errors naming them", async () => {
  const err = await Sources.jetstream({ stream: "NOPE", subjects: ["x"] }).createReader(standaloneContext({ nc })).catch((e) => e);
  assert.instance(err, WeirError);
  assert.match(err.message, /stream "NOPE" not found/);
  assert.throws(() => Sources.jetstream({ stream: "S", subjects: [] }), /Sources.jetstream: subjects/);
  assert.throws(() => Sources.jetstream({ stream: "S", subjects: ["a"], format: "xml" as "json" }), /format/);
  assert.throws(() => Sources.jetstream({ stream: "S", subjects: ["a"], startAt: { sequence: 0 } }), /startAt/);
});

s("a backpressured lane stops pulling: its buffer stays bounded", async () => {
  await makeStream("S8", ["s8.>"]);
  await publish("s8.a", Array.from({ length: 20_000 }, (_, i) => i));
  const woken: number[] = [];
  const lane = await ConsumerLane.open({
    js: jetstream(nc), stream: "S8", filter: "s8.a", namePrefix: "lanetest", startAt: "first", resumeAfter: undefined,
    bounded: false, maxMessages: 500, highWater: 2000, wake: () => woken.push(1), log: () => {}, stallMs: 3000,
  });
  await new Promise((r) => setTimeout(r, 700));
  assert.ok(lane.buffered >= 2000 && lane.buffered <= 2500, `buffered ${lane.buffered}`);
  const out: unknown[] = [];
  lane.drain(out as never);
  await new Promise((r) => setTimeout(r, 700));
  assert.ok(lane.buffered >= 2000 && lane.buffered <= 2500, `refilled after the drain, still bounded: ${lane.buffered}`);
  assert.ok(out.length >= 2000);
  await lane.close();
});

s.run();
