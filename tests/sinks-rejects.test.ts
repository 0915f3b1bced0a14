// Records a sink cannot write go to the dead letters with the reason, and the sink goes on (README,
// "Reliability"): cyclic records in Sinks.print, Sinks.file and Sinks.kv; a KV value over the server's max
// payload; a KV key longer than a protocol line holds (it closed the job's connection).
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { connect, type NatsConnection } from "@nats-io/transport-node";
import { Kvm } from "@nats-io/kv";
import { Sinks } from "../runtime/sinks/mod.ts";
import { standaloneContext } from "./helpers/standalone-context.ts";
import { withServer } from "./helpers/nats-server.ts";

const s = suite("records a sink cannot write");
const server = withServer(s);
let nc: NatsConnection;
let dir: string;
s.before(async () => { nc = await connect({ servers: server.url }); dir = mkdtempSync(join(tmpdir(), "weir-rejects-")); });
s.after(async () => { await nc?.close(); rmSync(dir, { recursive: true, force: true }); });

const cyclic = (): Record<string, unknown> => { const o: Record<string, unknown> = { k: "loop" }; o.self = o; return o; };

s("Sinks.file and Sinks.print: a cyclic record is a dead letter, the next one is written", async () => {
  const path = join(dir, "out.jsonl");
  const ctx = standaloneContext({ nc });
  const w = await Sinks.file(path).createWriter(ctx);
  await w.write(cyclic(), undefined);
  await w.write({ k: "after" }, undefined);
  await w.flush();
  await w.close();
  assert.equal(readFileSync(path, "utf8").trim().split("\n"), ['{"k":"after"}']);
  const p = await Sinks.print().createWriter(ctx);
  await p.write(cyclic(), undefined);
  assert.is(ctx.deadLetters.count, 2);
});

s("Sinks.kv: a cyclic record, a value over max payload and a key over 3000 bytes are dead letters; the rest is written", async () => {
  const ctx = standaloneContext({ nc });
  const w = await Sinks.kv({ bucket: "rejects", key: (v: { k: string }) => v.k }).createWriter(ctx);
  const max = nc.info!.max_payload;
  for (const v of [cyclic(), { k: "big", pad: "x".repeat(max + 10) }, { k: "y".repeat(5000) }, { k: "fine" }]) await w.write(v as { k: string }, undefined);
  await w.flush();
  assert.is(ctx.deadLetters.count, 3);
  const kv = await new Kvm(nc).open("rejects");
  assert.equal((await kv.get("fine"))?.json(), { k: "fine" });
  assert.not.ok(nc.isClosed(), "the connection stayed up");
  await w.close();
});

s("Sinks.jetstream, exactly-once: a record over the target stream's max_msg_size is a dead letter; the others are committed", async () => {
  const { jetstreamManager } = await import("@nats-io/jetstream");
  const jsm = await jetstreamManager(nc);
  await jsm.streams.add({ name: "SMALLMSG", subjects: ["smallmsg.>"], max_msg_size: 512 });
  const ctx = standaloneContext({ nc, job: "smallmsg", checkpointing: true });
  const w = await Sinks.jetstream({ stream: "SMALLMSG", subject: "smallmsg.out" }).createWriter(ctx) as unknown as {
    write(v: unknown): void; snapshotState(id: number): Promise<unknown>; notifyCheckpointComplete(id: number): Promise<void>; flush(): Promise<void>; close(): Promise<void>;
  };
  w.write({ a: 1 });
  w.write({ pad: "p".repeat(600) });
  w.write({ a: 2 });
  await w.snapshotState(1);
  await w.notifyCheckpointComplete(1);
  await w.flush();
  assert.is(ctx.deadLetters.count, 1);
  assert.is((await jsm.streams.info("SMALLMSG")).state.messages, 2, "the valid records are committed");
  await w.close();
});

s.run();
