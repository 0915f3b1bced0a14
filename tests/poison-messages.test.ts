// Poison messages on a real server: whatever a JetStream source reads (oversized, deeply nested, invalid
// UTF-8, random bytes, odd subjects) either flows or lands in the dead-letter stream with its reason,
// original size, stream and sequence, and the job goes on to the end.
import { suite } from "uvu";
import * as assert from "uvu/assert";
import * as t from "io-ts";
import { randomBytes } from "node:crypto";
import { connect, type NatsConnection } from "@nats-io/transport-node";
import { jetstream, jetstreamManager } from "@nats-io/jetstream";
import { withServer } from "./helpers/nats-server.ts";
import { readStream } from "./helpers/streams.ts";
import { StreamEnvironment } from "../runtime/api/environment.ts";
import { Sources } from "../runtime/sources/mod.ts";
import { Sinks } from "../runtime/sinks/mod.ts";
import { DeadLetterHeader, encodeDeadLetter } from "../actors/subtask/dead-letters.ts";
import { describeErrors } from "../runtime/core/validation.ts";
import { preview } from "../runtime/core/preview.ts";

const s = suite("poison messages");
const server = withServer(s);
let nc: NatsConnection;
s.before(async () => { nc = await connect({ servers: server.url }); });
s.after(async () => { await nc?.close(); });

const nested = (depth: number, leaf: unknown = 1): unknown => { let v = leaf; for (let i = 0; i < depth; i++) v = [v]; return v; };
const nestedText = (depth: number) => `${"[".repeat(depth)}1${"]".repeat(depth)}`;

interface Letter { headers: Record<string, string>; body: Record<string, unknown>; bytes: number }

async function dlq(job: string, expected: number): Promise<Letter[]> {
  const jsm = await jetstreamManager(nc);
  const deadline = Date.now() + 30_000;
  for (;;) {
    const info = await jsm.streams.info(`weir_${job}_dlq`).catch(() => undefined);
    if ((info?.state.messages ?? 0) >= expected || Date.now() > deadline) break;
    await new Promise((r) => setTimeout(r, 100));
  }
  const out: Letter[] = [];
  const c = await jetstream(nc).consumers.get(`weir_${job}_dlq`);
  const it = await c.fetch({ max_messages: expected + 10, expires: 2000 });
  for await (const m of it) {
    const headers: Record<string, string> = {};
    for (const k of m.headers?.keys() ?? []) headers[k] = m.headers!.get(k);
    out.push({ headers, body: m.json(), bytes: m.data.length });
    if (m.info.pending === 0) break;
  }
  return out;
}

const Rec = t.type({ id: t.number, payload: t.unknown }, "Rec");

s("formatters and dead-letter encoding survive any value", () => {
  const deep = nested(10_000);
  const r = t.type({ a: t.number }).decode(deep);
  assert.ok(r._tag === "Left");
  assert.match(describeErrors(r.left), /^expected \{ a: number \}, got \[\[\[\[/);
  assert.ok(preview(deep, 80).length <= 81);
  const cyclic: Record<string, unknown> = { a: 1 }; cyclic.self = cyclic;
  assert.is(preview(cyclic), '{"a":1,"self":[Circular]}');
  const quotes = encodeDeadLetter({ reason: "invalid JSON", origin: "in", data: '"'.repeat(600_000) }, 1024 * 1024);
  assert.ok(quotes.truncated);
  assert.ok(Buffer.byteLength(quotes.body) < 1024 * 1024);
  assert.is(quotes.headers.get(DeadLetterHeader.OriginalSize), "600000");
});

s("dead letters are logged as a warning naming the reason, at most one line per 10 s: the first of a burst at once, how many more by the window's end or the job's (as Kafka Streams' LogAndContinue)", async () => {
  const jsm = await jetstreamManager(nc);
  await jsm.streams.add({ name: "PWARN", subjects: ["pwarn"] });
  const js = jetstream(nc);
  for (let i = 0; i < 5; i++) await js.publish("pwarn", "{broken");
  await js.publish("pwarn", JSON.stringify({ id: 1, payload: 1 }));
  const lines: Array<{ message: string; level: unknown }> = [];
  const e = StreamEnvironment.create({ name: "poisonwarn", nats: server.url, stateBackend: "heap", parallelism: 1 }, { log: (message, fields) => lines.push({ message, level: fields?.level }) });
  try {
    const out = await e.fromSource(Sources.jetstream({ stream: "PWARN", subjects: ["pwarn"], codec: Rec, bounded: true }), { name: "in" }).executeAndCollect();
    assert.is(out.length, 1);
  } finally {
    await e.close();
  }
  const warnings = lines.filter((l) => /went to the dead letters/.test(l.message));
  assert.is(warnings.length, 2, JSON.stringify(lines));
  assert.equal(warnings.map((w) => w.level), ["warn", "warn"]);
  assert.match(warnings[0]!.message, /^a record went to the dead letters \(weir\.poisonwarn\.dlq\); the latest from .* \(stream PWARN sequence 1\): .*JSON/);
  assert.match(warnings[1]!.message, /^4 records went to the dead letters \(weir\.poisonwarn\.dlq\); the latest from .* \(stream PWARN sequence 5\): .*JSON/);
});

s("json + codec: every valid record exactly once, every poison in the dead-letter stream", async () => {
  const jsm = await jetstreamManager(nc);
  await jsm.streams.add({ name: "PJ", subjects: ["pj.>"] });
  const js = jetstream(nc);
  const subjects = ["pj.a", "pj.ü-ñ", "pj.$x.%", "pj.a.b.c.d.e.f.g", "pj.-"];
  const valid: number[] = [];
  const poisons: Array<{ seq: number; size: number; kind: string }> = [];
  let id = 0;
  const send = async (subject: string, data: Uint8Array | string, kind?: string) => {
    const ack = await js.publish(subject, data);
    if (kind) poisons.push({ seq: ack.seq, size: typeof data === "string" ? Buffer.byteLength(data) : data.length, kind });
  };
  const poisonsToSend: Array<[string, Uint8Array | string]> = [
    ["random-1MB", randomBytes(1_000_000)],
    ["quotes-600KB", '"'.repeat(600_000)],
    ["nested-10k", nestedText(10_000)],
    ["invalid-utf8", Buffer.from([0x7b, 0x22, 0x69, 0x64, 0x22, 0x3a, 0xff, 0xfe, 0x7d])],
    ["random-small", randomBytes(64)],
    ["codec-wrong", JSON.stringify({ id: "seven", payload: 1 })],
    ["empty", ""],
  ];
  for (let round = 0; round < 3; round++) {
    for (let i = 0; i < 40; i++) {
      const n = id++;
      valid.push(n);
      await send(subjects[n % subjects.length]!, JSON.stringify({ id: n, payload: { text: `v${n}`, tags: ["a", "b"] } }));
    }
    for (const [kind, data] of poisonsToSend) await send(subjects[round % subjects.length]!, data, kind);
  }
  // Codec-valid, but too deep to be encoded for the next subtask: dead-lettered by the operator.
  const deepIds: number[] = [];
  for (let i = 0; i < 2; i++) {
    const n = 10_000 + i;
    deepIds.push(n);
    await send("pj.a", `{"id":${n},"payload":${nestedText(10_000)}}`);
  }

  const e = StreamEnvironment.create({ name: "poisonjson", nats: server.url, stateBackend: "heap", parallelism: 2, checkpointIntervalMs: 300 });
  e.fromSource(Sources.jetstream({ stream: "PJ", subjects: ["pj.>"], codec: Rec, bounded: true }), { name: "in" })
    .map((r) => r, { name: "pass" })
    .keyBy((r) => r.id)
    .process({ processElement(r, ctx) { ctx.collect({ id: r.id }); } }, { name: "ids" })
    .sinkTo(Sinks.jetstream({ stream: "PJ_OUT", subject: "pjout" }), { name: "out" });
  await e.execute();
  await e.close();

  const out = await readStream<{ id: number }>(nc, "PJ_OUT");
  assert.equal(out.map((o) => o.id).sort((a, b) => a - b), valid, "every valid record exactly once");

  const letters = await dlq("poisonjson", poisons.length + deepIds.length);
  assert.is(letters.length, poisons.length + deepIds.length, "one dead letter per poison");
  const bySeq = new Map(letters.filter((l) => l.headers[DeadLetterHeader.Sequence]).map((l) => [Number(l.headers[DeadLetterHeader.Sequence]), l]));
  for (const p of poisons) {
    const l = bySeq.get(p.seq);
    assert.ok(l, `dead letter for ${p.kind} (seq ${p.seq})`);
    assert.is(l!.headers[DeadLetterHeader.Stream], "PJ");
    assert.is(l!.headers[DeadLetterHeader.OriginalSize], String(p.size), `${p.kind}: original size`);
    assert.ok(l!.headers[DeadLetterHeader.Reason]!.length > 0);
    assert.is(l!.body.sequence, p.seq);
    assert.is(l!.body.stream, "PJ");
    assert.is(l!.body.size, p.size);
    assert.ok(l!.bytes <= 1024 * 1024);
    if (p.kind === "random-1MB" || p.kind === "quotes-600KB") assert.is(l!.headers[DeadLetterHeader.Truncated], "true", `${p.kind} truncated`);
    if (p.kind === "invalid-utf8") assert.match(String(l!.body.reason), /invalid UTF-8/);
    if (p.kind === "nested-10k") assert.match(String(l!.body.reason), /codec Rec: .*expected/);
  }
  const byOperator = letters.filter((l) => !l.headers[DeadLetterHeader.Sequence]);
  assert.is(byOperator.length, deepIds.length);
  for (const l of byOperator) {
    assert.match(String(l.body.origin), /^pass#\d$/);
    assert.match(String(l.body.reason), /cannot be encoded for the next subtask: RangeError/);
    assert.match(String(l.body.data), /^\{"id":1000[01],"payload":\[\[\[/);
  }
});

s("a record the sink cannot encode (too deep, chained with the source: no frame) is dead-lettered by the sink", async () => {
  const jsm = await jetstreamManager(nc);
  await jsm.streams.add({ name: "PS", subjects: ["ps.>"] });
  const js = jetstream(nc);
  for (let i = 0; i < 20; i++) await js.publish("ps.a", JSON.stringify({ id: i, payload: i }));
  await js.publish("ps.a", `{"id":99,"payload":${nestedText(10_000)}}`);
  const e = StreamEnvironment.create({ name: "poisonsink", nats: server.url, stateBackend: "heap", parallelism: 1, checkpointIntervalMs: 300 });
  e.fromSource(Sources.jetstream({ stream: "PS", subjects: ["ps.>"], codec: Rec, bounded: true }), { name: "in" })
    .sinkTo(Sinks.jetstream({ stream: "PS_OUT", subject: "psout" }), { name: "out" });
  await e.execute();
  await e.close();
  const out = await readStream<{ id: number }>(nc, "PS_OUT");
  assert.equal(out.map((o) => o.id).sort((a, b) => a - b), Array.from({ length: 20 }, (_, i) => i));
  const letters = await dlq("poisonsink", 1);
  assert.is(letters.length, 1);
  assert.match(String(letters[0]!.body.origin), /^out#0$/);
  assert.match(String(letters[0]!.body.reason), /cannot be encoded by the sink: RangeError/);
});

s("text and bytes formats: invalid UTF-8 and oversized input dead-lettered (text), everything flows (bytes)", async () => {
  const jsm = await jetstreamManager(nc);
  await jsm.streams.add({ name: "PT", subjects: ["pt.>"] });
  const js = jetstream(nc);
  const lines: string[] = [];
  for (let i = 0; i < 50; i++) { lines.push(`line ${i} ü`); await js.publish(`pt.${i % 3}`, `line ${i} ü`); }
  const bad = await js.publish("pt.x", Buffer.from([0x61, 0xc3, 0x28]));
  const big = await js.publish("pt.y", Buffer.concat([Buffer.from([0xff]), randomBytes(999_000)]));

  const text = StreamEnvironment.create({ name: "poisontext", nats: server.url, stateBackend: "heap", parallelism: 2 });
  const collected = await text.fromSource(Sources.jetstream({ stream: "PT", subjects: ["pt.>"], format: "text", bounded: true }), { name: "lines" })
    .rebalance().map((l) => l).executeAndCollect();
  await text.close();
  assert.equal([...collected].sort(), [...lines].sort());
  const letters = await dlq("poisontext", 2);
  assert.equal(letters.map((l) => Number(l.headers[DeadLetterHeader.Sequence])).sort((a, b) => a - b), [bad.seq, big.seq]);
  for (const l of letters) assert.match(String(l.body.reason), /invalid UTF-8/);
  assert.is(letters.find((l) => Number(l.headers[DeadLetterHeader.Sequence]) === big.seq)!.headers[DeadLetterHeader.OriginalSize], "999001");

  const bytes = StreamEnvironment.create({ name: "poisonbytes", nats: server.url, stateBackend: "heap", parallelism: 2 });
  const sizes = await bytes.fromSource(Sources.jetstream({ stream: "PT", subjects: ["pt.>"], format: "bytes", bounded: true }), { name: "raw" })
    .map((b: Uint8Array) => b.length).rebalance().map((n) => n).executeAndCollect();
  await bytes.close();
  assert.is(sizes.length, 52);
  assert.ok(sizes.includes(999_001));
});

s.run();
