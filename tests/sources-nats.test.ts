import { suite } from "uvu";
import * as assert from "uvu/assert";
import * as t from "io-ts";
import { connect, type NatsConnection } from "@nats-io/transport-node";
import { withServer } from "./helpers/nats-server.ts";
import { Sources } from "../runtime/sources/mod.ts";
import { standaloneContext } from "./helpers/standalone-context.ts";
import { within } from "./helpers/cli.ts";
import type { SourceReader } from "../runtime/contracts/connectors.ts";

const s = suite("Sources.nats");
const server = withServer(s);
let nc: NatsConnection;
s.before(async () => { nc = await connect({ servers: server.url }); });
s.after(async () => { await nc?.close(); });

async function drain<T>(readers: Array<SourceReader<T>>, total: number, ms = 5000): Promise<T[][]> {
  const got: T[][] = readers.map(() => []);
  const deadline = Date.now() + ms;
  while (got.reduce((n, g) => n + g.length, 0) < total && Date.now() < deadline) {
    await Promise.all(readers.map(async (r, i) => { got[i]!.push(...(await r.pollNext())!.values); }));
  }
  return got;
}

s("subtasks share a queue group: each message reaches exactly one of them", async () => {
  const def = Sources.nats({ subject: "in.q" });
  const r0 = await def.createReader(standaloneContext({ nc, subtaskIndex: 0, parallelism: 2, operatorUid: "src" }));
  const r1 = await def.createReader(standaloneContext({ nc, subtaskIndex: 1, parallelism: 2, operatorUid: "src" }));
  for (let i = 0; i < 1000; i++) nc.publish("in.q", JSON.stringify({ i }));
  await nc.flush();
  const [a, b] = await drain([r0, r1], 1000);
  const all = [...a!, ...b!].map((v) => (v as { i: number }).i).sort((x, y) => x - y);
  assert.equal(all, Array.from({ length: 1000 }, (_, i) => i), "every message once");
  assert.ok(a!.length > 0 && b!.length > 0, `both subtasks got some (${a!.length}/${b!.length})`);
  const more = await drain([r0, r1], 1, 200);
  assert.is(more.flat().length, 0, "nothing extra");
  assert.equal(r0.takeAttributes!(), { isBacklog: false });
  assert.is(r0.takeAttributes!(), undefined);
  await r0.close();
  await r1.close();
});

s("an explicit queue, text format, and an empty batch within the short wait", async () => {
  const r = await Sources.nats({ subject: "in.t", queue: "mygroup", format: "text" }).createReader(standaloneContext({ nc }));
  // An empty batch, not a wait for input that never comes (a deadline, not a speed bound).
  assert.equal((await within(r.pollNext(), 10_000))?.values, [], "an empty batch when nothing was published");
  nc.publish("in.t", "hello");
  nc.publish("in.t", "world");
  const [got] = await drain([r], 2);
  assert.equal(got, ["hello", "world"]);
  await r.close();
});

s("malformed input goes to the DLQ with the subject; reading goes on", async () => {
  const ctx = standaloneContext({ nc, job: "natsdlq" });
  const dlq: Array<Record<string, unknown>> = [];
  const sub = nc.subscribe("weir.natsdlq.dlq", { callback: (_e, m) => { dlq.push(m.json()); } });
  const r = await Sources.nats({ subject: "in.d", codec: t.type({ n: t.number }, "N") }).createReader(ctx);
  nc.publish("in.d", "{oops");
  nc.publish("in.d", JSON.stringify({ n: "x" }));
  nc.publish("in.d", JSON.stringify({ n: 1 }));
  const [got] = await drain([r], 1);
  assert.equal(got, [{ n: 1 }]);
  await ctx.publisher.flush();
  await nc.flush();
  assert.is(ctx.deadLetters.count, 2);
  assert.equal(dlq.map((d) => d.subject), ["in.d", "in.d"]);
  assert.match(String(dlq[0]!.reason), /invalid JSON/);
  assert.match(String(dlq[1]!.reason), /codec N: n: expected number, got "x"/);
  sub.unsubscribe();
  await r.close();
});

s("metadata: true gives subject, headers and the reply subject: a job can answer a request", async () => {
  const { headers } = await import("@nats-io/transport-node");
  const r = await Sources.nats({ subject: "in.m.*", format: "text", metadata: true }).createReader(standaloneContext({ nc }));
  const h = headers();
  h.set("Trace-Id", "abc");
  const answer = nc.request("in.m.req", "ping", { timeout: 5000, headers: h });
  nc.publish("in.m.plain", "hello");
  const [got] = await drain([r], 2);
  const req = got!.find((m) => m.subject === "in.m.req")!;
  assert.is(req.data, "ping");
  assert.equal(req.headers["Trace-Id"], ["abc"]);
  assert.ok(req.reply, "a request's record has its reply subject");
  nc.publish(req.reply!, `pong to ${req.headers["Trace-Id"]![0]}`);
  assert.is((await answer).string(), "pong to abc");
  assert.equal(got!.find((m) => m.subject === "in.m.plain"), { subject: "in.m.plain", data: "hello", headers: {} });
  await r.close();
});

s("bad options fail at definition", () => {
  assert.throws(() => Sources.nats({ subject: "" }), /Sources.nats: subject/);
  assert.throws(() => Sources.nats({ subject: "a", queue: "a b" }), /queue/);
});

s.run();
