import { suite } from "uvu";
import * as assert from "uvu/assert";
import { connect, type NatsConnection } from "@nats-io/transport-node";
import { withServer } from "./helpers/nats-server.ts";
import { Sinks } from "../runtime/sinks/mod.ts";
import { standaloneContext } from "./helpers/standalone-context.ts";

const s = suite("Sinks.nats");
const server = withServer(s);
let nc: NatsConnection;
let reader: NatsConnection;
s.before(async () => { nc = await connect({ servers: server.url }); reader = await connect({ servers: server.url }); });
s.after(async () => { await nc?.close(); await reader?.close(); });

s("one core message per record, JSON, with a fixed or computed subject; flush reaches the server", async () => {
  const got: Array<{ subject: string; value: unknown }> = [];
  const sub = reader.subscribe("out.>", { callback: (_e, m) => { got.push({ subject: m.subject, value: m.json() }); } });
  await reader.flush();
  const fixed = await Sinks.nats({ subject: "out.fixed" }).createWriter(standaloneContext({ nc }));
  const byKind = await Sinks.nats({ subject: (v: { kind: string }) => `out.${v.kind}` }).createWriter(standaloneContext({ nc }));
  for (let i = 0; i < 10_000; i++) {
    const p = fixed.write({ i }, undefined);
    if (p) await p;
  }
  await byKind.write({ kind: "a" }, undefined);
  await byKind.write({ kind: "b" }, undefined);
  await fixed.flush();
  await byKind.flush();
  const deadline = Date.now() + 3000;
  while (got.length < 10_002 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
  assert.is(got.length, 10_002);
  assert.equal(got[9_999], { subject: "out.fixed", value: { i: 9_999 } });
  assert.equal(got.slice(10_000).map((g) => g.subject).sort(), ["out.a", "out.b"]);
  sub.unsubscribe();
  await fixed.close();
});

s("a bad subject is a clear error", async () => {
  assert.throws(() => Sinks.nats({ subject: "out.>" }), /Sinks.nats: subject "out.>": wildcards/);
  const ctx = standaloneContext({ nc });
  const w = await Sinks.nats({ subject: (v: string) => v }).createWriter(ctx);
  w.write("has space", undefined);
  assert.is(ctx.deadLetters.count, 1, "a record whose subject cannot be published to is a dead letter; the sink goes on");
});

s.run();
