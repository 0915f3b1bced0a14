// A server with a small max_payload (4 KB here; some set 64 KB): everything weir writes itself fits it.
// The exactly-once sink staged output in chunks of a fixed size, so a checkpoint failed and the next one
// completed without those records (output lost, exit 0); the changelog's part size went negative and
// looped until the process ran out of memory; checkpoint metadata and cached streams had fixed sizes too.
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { connect, type NatsConnection } from "@nats-io/transport-node";
import { launchNatsServer, type NatsServerProcess } from "../runtime/nats/server-process.ts";
import * as t from "io-ts";
import { Sinks, Sources, StreamEnvironment, valueState } from "../mod.ts";
import { readStream } from "./helpers/streams.ts";
import { StagingArea, type StagedRecord } from "../runtime/sinks/staging.ts";

const s = suite("a small max_payload");
const MAX_PAYLOAD = 4096;
let dir: string;
let server: NatsServerProcess;
let nc: NatsConnection;
s.before(async () => {
  dir = mkdtempSync(join(tmpdir(), "weir-staging-"));
  writeFileSync(join(dir, "small.conf"), `max_payload: ${MAX_PAYLOAD}\n`);
  server = await launchNatsServer({ args: ["-c", join(dir, "small.conf")] });
  nc = await connect({ servers: server.url });
});
s.after(async () => {
  await nc?.close();
  await server?.stop();
  rmSync(dir, { recursive: true, force: true });
});

s("every record of every checkpoint is published once: many small records, and one that needs several staging messages", async () => {
  assert.is(nc.info!.max_payload, MAX_PAYLOAD);
  // ~480 KB of small records (a 256 KB chunk was over the limit), and one record just under max_payload
  // as it is published, over what a staging message holds beside its envelope.
  const huge = "x".repeat(3_800);
  const records = Array.from({ length: 600 }, (_, i) => ({ i, pad: i === 590 ? huge : "x".repeat(800) }));
  const env = StreamEnvironment.create({ name: "staging", nats: server.url, stateBackend: "heap", checkpointIntervalMs: 200, parallelism: 1, mode: "streaming" });
  try {
    env.fromSource(Sources.array(records)).sinkTo(Sinks.jetstream({ stream: "SOUT", subject: "sout.all" }));
    await env.execute();
  } finally {
    await env.close();
  }
  const out = await readStream<{ i: number; pad: string }>(nc, "SOUT");
  assert.equal(out.map((r) => r.i), records.map((r) => r.i), "every record once, in order");
  assert.is(out.find((r) => r.i === 590)?.pad, huge, "the large record intact");
});

s("staged output reads back whole, records split over several messages included (a commit retried after a restore)", async () => {
  const area = new StagingArea(nc, "weir_t_staging", "weir.t.staging.op.0");
  // Text payloads and bytes payloads (a bytes record's: staged as base64), some larger than a message.
  const records: StagedRecord[] = Array.from({ length: 300 }, (_, i) => [`out.${i}`, i % 3 === 1
    ? Uint8Array.from({ length: i % 100 === 7 ? 9_000 : 300 }, (_, j) => (i + j) & 0xff)
    : JSON.stringify({ i, pad: (i % 100 === 7 ? "é\"".repeat(5_000) : "y".repeat(500)) })]);
  const ref = await area.stage(1, 0, records);
  assert.ok(ref && ref.lastSeq - ref.firstSeq + 1 > 10, "several messages");
  assert.equal(await area.read(ref!), records);
});

for (const stateBackend of ["jetstream-kv", "heap"] as const) {
  s(`keyed state with checkpoints runs to its exact end (${stateBackend}): changelog parts, KV values and checkpoint metadata fit`, async () => {
    const words = Array.from({ length: 3000 }, (_, i) => ({ w: `w${i % 400}`, pad: "z".repeat(i % 7 === 0 ? 3000 : 20) }));
    const count = valueState("count", t.number);
    const last = valueState("last", t.string);
    const env = StreamEnvironment.create({ name: `mp${stateBackend.length}`, nats: server.url, stateBackend, checkpointIntervalMs: 100, parallelism: 2, mode: "streaming" });
    let out: Array<{ w: string; n: number }>;
    try {
      out = await env.fromSource(Sources.array(words)).keyBy((r) => r.w).process<{ w: string; n: number }>({
        async processElement(r, ctx) {
          const n = ((await ctx.state(count).value()) ?? 0) + 1;
          await ctx.state(count).update(n);
          await ctx.state(last).update(r.pad);
          ctx.collect({ w: r.w, n });
        },
      }).executeAndCollect();
    } finally {
      await env.close();
    }
    const final = new Map<string, number>();
    for (const o of out) final.set(o.w, Math.max(final.get(o.w) ?? 0, o.n));
    assert.is(out.length, 3000);
    assert.is(final.size, 400);
    assert.ok([...final.values()].every((n) => n === 7 || n === 8), "every word counted 7 or 8 times");
  });
}

s.run();
