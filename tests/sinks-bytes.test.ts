// Bytes records (a `format: "bytes"` source's) leave through the sinks as their bytes, not as JSON.
import { suite } from "uvu";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import * as assert from "uvu/assert";
import { connect, type NatsConnection } from "@nats-io/transport-node";
import { jetstream, jetstreamManager } from "@nats-io/jetstream";
import { Kvm } from "@nats-io/kv";
import { withServer } from "./helpers/nats-server.ts";
import { within } from "./helpers/cli.ts";
import { Sinks } from "../runtime/sinks/mod.ts";
import { Sources } from "../runtime/sources/mod.ts";
import { StreamEnvironment } from "../runtime/api/environment.ts";
import { standaloneContext } from "./helpers/standalone-context.ts";

const s = suite("bytes records through the sinks");
const server = withServer(s);
let nc: NatsConnection;
s.before(async () => { nc = await connect({ servers: server.url }); });
s.after(async () => { await nc?.close(); });

/** Payloads that are not JSON and not UTF-8: what a bytes record must keep. */
const PAYLOADS = Array.from({ length: 40 }, (_, i) => Uint8Array.from([0xff, 0x00, i, 0xc3, 0x28, ...Array.from({ length: i * 50 }, (_, j) => (i * j) & 0xff)]));
const hex = (b: Uint8Array) => Buffer.from(b).toString("hex");

async function publishInput(stream: string, subject: string): Promise<void> {
  await (await jetstreamManager(nc)).streams.add({ name: stream, subjects: [subject] });
  for (const p of PAYLOADS) await jetstream(nc).publish(subject, p);
}

async function storedPayloads(stream: string, n: number): Promise<string[]> {
  const jsm = await jetstreamManager(nc);
  const out: string[] = [];
  for (let seq = 1; seq <= n; seq++) out.push(hex((await jsm.streams.getMessage(stream, { seq }))!.data));
  return out;
}

s("Sinks.jetstream, exactly-once with checkpoints and without: every bytes record is published as its bytes, in order", async () => {
  await publishInput("BYTESIN", "bytesin");
  for (const [name, checkpointIntervalMs] of [["bytesonce", 100], ["bytesalo", 0]] as const) {
    const out = name.toUpperCase();
    const env = StreamEnvironment.create({ name, nats: server.url, stateBackend: "heap", parallelism: 1, checkpointIntervalMs }, { log: () => {} });
    try {
      env.fromSource(Sources.jetstream({ stream: "BYTESIN", subjects: ["bytesin"], format: "bytes", bounded: true }))
        .rebalance() // through a frame to another subtask
        .sinkTo(Sinks.jetstream({ stream: out, subject: `${name}.out` }));
      const result = await within(env.execute(), 60_000);
      assert.ok(result, `${name}: the job finished`);
      assert.is(result!.status.deadLetters, 0);
      assert.is((await (await jetstreamManager(nc)).streams.info(out)).state.messages, PAYLOADS.length, name);
      assert.equal(await storedPayloads(out, PAYLOADS.length), PAYLOADS.map(hex), name);
      if (checkpointIntervalMs > 0) {
        // What the commits published, beside `out` (records handed to the sink).
        const sink = result!.status.subtasks.flatMap((st) => Object.values(st.operators)).find((m) => m.committedRecords !== undefined);
        assert.is(sink?.committedRecords, PAYLOADS.length);
      }
    } finally {
      await env.close();
    }
  }
});

s("Sinks.nats and Sinks.kv write a bytes record as its bytes", async () => {
  await publishInput("BYTESIN2", "bytesin2");
  const received: string[] = [];
  const sub = nc.subscribe("bytesnats.out");
  const reading = (async () => { for await (const m of sub) { received.push(hex(m.data)); if (received.length === PAYLOADS.length) break; } })();
  const env = StreamEnvironment.create({ name: "bytesnats", nats: server.url, stateBackend: "heap", parallelism: 1 }, { log: () => {} });
  try {
    const input = env.fromSource(Sources.jetstream({ stream: "BYTESIN2", subjects: ["bytesin2"], format: "bytes", bounded: true }));
    input.sinkTo(Sinks.nats({ subject: "bytesnats.out" }));
    input.sinkTo(Sinks.kv({ bucket: "bytes_kv", key: (b: Uint8Array) => `k${b[2]}` }));
    assert.ok(await within(env.execute(), 60_000), "the job finished");
    assert.ok(await within(reading.then(() => true), 10_000), `every message arrived (${received.length})`);
    assert.equal(received, PAYLOADS.map(hex));
    const kv = await new Kvm(nc).open("bytes_kv");
    for (const i of [0, 7, 39]) assert.is(hex((await kv.get(`k${i}`))!.value), hex(PAYLOADS[i]!), `key k${i}`);
  } finally {
    sub.unsubscribe();
    await env.close();
  }
});

s("Sinks.file: a bytes record is its base64 as a JSON string in jsonl, its text in lines; bytes that are not UTF-8 text go to the dead letters", async () => {
  const dir = mkdtempSync(join(tmpdir(), "weir-bytes-file-"));
  const dlq = nc.subscribe("weir.bytesfile.dlq");
  try {
    const jsonl = join(dir, "out.jsonl");
    const w = await Sinks.file(jsonl, { lingerMs: 10 }).createWriter(standaloneContext({ nc, job: "bytesfile" }));
    for (const p of PAYLOADS.slice(0, 5)) await w.write(p, undefined);
    await w.close();
    const lines = readFileSync(jsonl, "utf8").trimEnd().split("\n");
    assert.equal(lines.map((l) => hex(Buffer.from(JSON.parse(l) as string, "base64"))), PAYLOADS.slice(0, 5).map(hex));

    const text = join(dir, "out.txt");
    const t = await Sinks.file(text, { format: "lines", lingerMs: 10 }).createWriter(standaloneContext({ nc, job: "bytesfile" }));
    await t.write(new TextEncoder().encode("héllo wörld"), undefined);
    await t.write(PAYLOADS[0]!, undefined); // 0xff and a lone 0xc3: not UTF-8
    await t.write("plain", undefined);
    await t.close();
    assert.is(readFileSync(text, "utf8"), "héllo wörld\nplain\n");
    const letter = await within((async () => { for await (const m of dlq) return m.json<{ reason: string }>(); })(), 10_000);
    assert.ok(letter, "a dead letter for the bytes that are not text");
    assert.match(letter!.reason, /not UTF-8 text/);
  } finally {
    dlq.unsubscribe();
    rmSync(dir, { recursive: true, force: true });
  }
});

s("Sinks.print shows a bytes record as bytes, on one line", async () => {
  const printed: string[] = [];
  const write = process.stdout.write;
  const w = await Sinks.print().createWriter(standaloneContext({ nc }));
  process.stdout.write = ((chunk: string) => { printed.push(String(chunk)); return true; }) as typeof process.stdout.write;
  try {
    await w.write(Uint8Array.from([0xff, 0, 7]), undefined);
    await w.write(Uint8Array.from({ length: 300 }, (_, i) => i & 0xff), undefined);
  } finally {
    process.stdout.write = write;
  }
  assert.equal(printed[0], "Uint8Array(3) [ 255, 0, 7 ]\n");
  assert.match(printed[1]!, /^Uint8Array\(300\) \[ 0, 1, 2, .* \.\.\. 200 more items \]\n$/);
});

s.run();
