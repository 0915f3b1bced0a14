// The exactly-once JetStream sink stages each checkpoint's output in messages that fit the server's
// max_payload, whatever its records: staged in chunks of a fixed size, a checkpoint failed on a server
// with a small max_payload and the next one completed without those records (output lost, exit 0).
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { connect, type NatsConnection } from "@nats-io/transport-node";
import { launchNatsServer, type NatsServerProcess } from "../runtime/nats/server-process.ts";
import { Sinks, Sources, StreamEnvironment } from "../mod.ts";
import { readStream } from "./helpers/streams.ts";
import { StagingArea, type StagedRecord } from "../runtime/sinks/staging.ts";

const s = suite("exactly-once staging within max_payload");
const MAX_PAYLOAD = 64 * 1024;
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
  // ~480 KB per run of small records (a 256 KB chunk was over the limit), and one record just under
  // max_payload as it is published, over what a staging message holds beside its envelope.
  const huge = "x".repeat(62_000);
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
  const records: StagedRecord[] = Array.from({ length: 300 }, (_, i) => [`out.${i}`, JSON.stringify({ i, pad: (i % 100 === 7 ? "é\"".repeat(50_000) : "y".repeat(500)) })]);
  const ref = await area.stage(1, 0, records);
  assert.ok(ref && ref.lastSeq - ref.firstSeq + 1 > 10, "several messages");
  assert.equal(await area.read(ref!), records);
});

s.run();
