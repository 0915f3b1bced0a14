import { suite } from "uvu";
import * as assert from "uvu/assert";
import * as t from "io-ts";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { connect, type NatsConnection } from "@nats-io/transport-node";
import { jetstream, jetstreamManager } from "@nats-io/jetstream";
import { withServer } from "./helpers/nats-server.ts";
import { within } from "./helpers/cli.ts";
import { StreamEnvironment } from "../runtime/api/environment.ts";
import { Sources } from "../runtime/sources/mod.ts";
import { Sinks } from "../runtime/sinks/mod.ts";

const fixtures = new URL("./fixtures/", import.meta.url).pathname;
const s = suite("sources and sinks in real jobs");
const server = withServer(s);
let nc: NatsConnection;
let dir: string;
s.before(async () => { nc = await connect({ servers: server.url }); dir = mkdtempSync(join(tmpdir(), "weir-e2e-conn-")); });
s.after(async () => { await nc?.close(); rmSync(dir, { recursive: true, force: true }); });

const env = (name: string, parallelism = 2) => StreamEnvironment.create({ name, nats: server.url, stateBackend: "heap", parallelism });

s("jetstream source (2 subjects, parallelism 2, bounded) → map → jetstream sink", async () => {
  const jsm = await jetstreamManager(nc);
  await jsm.streams.add({ name: "E_IN", subjects: ["ein.>"] });
  const js = jetstream(nc);
  for (let i = 0; i < 1000; i += 250) await Promise.all(Array.from({ length: 250 }, (_, k) => js.publish(`ein.${(i + k) % 2 ? "odd" : "even"}`, JSON.stringify({ n: i + k }))));
  await js.publish("ein.odd", "{broken");
  const e = env("e2ejs");
  const N = t.type({ n: t.number });
  e.fromSource(Sources.jetstream({ stream: "E_IN", subjects: ["ein.even", "ein.odd"], codec: N, bounded: true }), { name: "in" })
    .map((v) => ({ n: v.n * 2 }))
    .sinkTo(Sinks.jetstream({ stream: "E_OUT", subject: (v: { n: number }) => `eout.${v.n % 3}` }), { name: "out" });
  await e.execute();
  await e.close();
  const info = await jsm.streams.info("E_OUT");
  assert.is(info.state.messages, 1000);
  const dlq = await jsm.streams.info("weir_e2ejs_dlq");
  assert.is(dlq.state.messages, 1);
});

s("jetstream source whose stream is deleted while the job runs: the job fails, naming the stream, instead of idling as if healthy", async () => {
  const jsm = await jetstreamManager(nc);
  await jsm.streams.add({ name: "E_GONE", subjects: ["egone.>"] });
  await jetstream(nc).publish("egone.a", JSON.stringify({ n: 1 }));
  const e = StreamEnvironment.create({ name: "e2egone", nats: server.url, stateBackend: "heap", parallelism: 1, restartStrategy: { type: "none" } });
  let seen = 0;
  e.fromSource(Sources.jetstream({ stream: "E_GONE", subjects: ["egone.a"] }), { name: "in" })
    .map((v) => { seen++; return v; })
    .sinkTo(Sinks.nats({ subject: "egone.out" }), { name: "out" });
  try {
    const client = await e.executeAsync();
    const until = Date.now() + 30_000;
    while (seen === 0 && Date.now() < until) await new Promise((r) => setTimeout(r, 50));
    assert.is(seen, 1, "the job read the stream's message");
    await jsm.streams.delete("E_GONE");
    const outcome = await within(client.result().then(() => "ended without a failure", (err: Error) => err.message), 60_000);
    assert.match(outcome ?? "still running 60 s after the stream was deleted", /stream "E_GONE" was deleted while the job read it/);
  } finally {
    await e.close();
  }
});

s("jetstream source → executeAndCollect", async () => {
  const e = env("e2ecollect");
  const got = await e.fromSource(Sources.jetstream({ stream: "E_IN", subjects: ["ein.even"], bounded: true })).executeAndCollect();
  assert.is(got.length, 500);
  await e.close();
});

s("metadata: true: a job keys by the subject a wildcard matched and reads a header, across a keyBy", async () => {
  const jsm = await jetstreamManager(nc);
  await jsm.streams.add({ name: "E_META", subjects: ["emeta.>"] });
  const js = jetstream(nc);
  const { headers } = await import("@nats-io/transport-node");
  for (let i = 0; i < 6; i++) {
    const h = headers();
    h.append("Tenant", `t${i % 2}`);
    h.append("Tenant", "extra");
    await js.publish(`emeta.${i % 3 === 0 ? "eu" : "us"}`, JSON.stringify({ n: i }), { headers: h });
  }
  const e = env("e2emeta");
  try {
    const got = await e.fromSource(Sources.jetstream({ stream: "E_META", subjects: ["emeta.>"], codec: t.type({ n: t.number }), bounded: true, metadata: true }), { name: "in" })
      .keyBy((m) => m.subject)
      .reduce((a, b) => ({ ...b, data: { n: a.data.n + b.data.n } }))
      .executeAndCollect();
    const last = new Map(got.map((m) => [m.subject, m]));
    assert.equal([...last.keys()].sort(), ["emeta.eu", "emeta.us"]);
    assert.is(last.get("emeta.eu")!.data.n, 0 + 3);
    assert.is(last.get("emeta.us")!.data.n, 1 + 2 + 4 + 5);
    assert.equal(last.get("emeta.eu")!.headers["Tenant"], ["t1", "extra"]);
    assert.ok(typeof last.get("emeta.eu")!.sequence === "number" && typeof last.get("emeta.eu")!.time === "number");
  } finally {
    await e.close();
  }
  assert.throws(() => Sources.jetstream({ stream: "E_META", subjects: ["emeta.>"], format: "bytes", metadata: true }), /metadata: true takes format "json" or "text"/);
});

s("file source (jsonl) → kv sink", async () => {
  const e = env("e2efile", 1);
  e.fromSource(Sources.file(join(fixtures, "events.jsonl"), { format: "jsonl", codec: t.type({ user: t.string, n: t.number }) }))
    .sinkTo(Sinks.kv({ bucket: "e2e_users", key: (v: { user: string }) => v.user }));
  await e.execute();
  await e.close();
  const { Kvm } = await import("@nats-io/kv");
  const kv = await new Kvm(nc).open("e2e_users");
  assert.equal((await kv.get("e"))?.json(), { user: "e", n: 5 });
});

s("hybrid (file, then nats) → file sink; stopped by the collect limit", async () => {
  const out = join(dir, "hybrid.jsonl");
  const e = env("e2ehybrid", 1);
  const stream = e.fromSource(Sources.hybrid<string>(Sources.file(join(fixtures, "words.txt"), { format: "lines" }), Sources.nats({ subject: "e2e.live", format: "text" })));
  stream.sinkTo(Sinks.file(out, { format: "lines" }));
  const collected = stream.executeAndCollect({ limit: 6 });
  await new Promise((r) => setTimeout(r, 1000));
  nc.publish("e2e.live", "live one");
  const got = await collected;
  assert.equal(got, ["first line", "second line", "", "üñï 😀", "last line without newline", "live one"]);
  await e.close();
  assert.match(readFileSync(out, "utf8"), /live one/);
});

s("nats source → nats sink (queue group across 2 subtasks)", async () => {
  const e = env("e2enats", 2);
  const got: unknown[] = [];
  const sub = nc.subscribe("e2e.out", { callback: (_e, m) => { got.push(m.json()); } });
  e.fromSource(Sources.nats({ subject: "e2e.in" })).sinkTo(Sinks.nats({ subject: "e2e.out" }));
  const client = await e.executeAsync();
  await new Promise((r) => setTimeout(r, 1000));
  for (let i = 0; i < 100; i++) nc.publish("e2e.in", JSON.stringify(i));
  const deadline = Date.now() + 5000;
  while (got.length < 100 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
  await client.stop();
  await e.close();
  sub.unsubscribe();
  assert.equal((got as number[]).sort((a, b) => a - b), Array.from({ length: 100 }, (_, i) => i));
});

s.run();
