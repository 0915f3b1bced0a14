import { suite } from "uvu";
import * as assert from "uvu/assert";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { connect, type NatsConnection } from "@nats-io/transport-node";
import { withServer } from "./helpers/nats-server.ts";
import { Sinks } from "../runtime/sinks/mod.ts";
import { standaloneContext } from "./helpers/standalone-context.ts";
import { WeirError } from "../runtime/core/errors.ts";
import { readdirSync } from "node:fs";
import { StreamEnvironment } from "../runtime/api/environment.ts";
import { Sources } from "../runtime/sources/mod.ts";

const s = suite("Sinks.file");
const server = withServer(s);
let nc: NatsConnection;
let dir: string;
s.before(async () => { nc = await connect({ servers: server.url }); dir = mkdtempSync(join(tmpdir(), "weir-file-sink-")); });
s.after(async () => { await nc?.close(); rmSync(dir, { recursive: true, force: true }); });

s("jsonl appends one JSON line per record; flush makes it visible; an existing file is appended to", async () => {
  const path = join(dir, "out", "counts.jsonl");
  const w = await Sinks.file(path).createWriter(standaloneContext({ nc }));
  for (let i = 0; i < 20_000; i++) {
    const p = w.write({ i, s: "x".repeat(10) }, undefined);
    if (p) await p;
  }
  await w.flush();
  const lines = readFileSync(path, "utf8").split("\n");
  assert.is(lines.length, 20_001, "20000 lines and the final newline");
  assert.equal(JSON.parse(lines[12_345]!), { i: 12_345, s: "xxxxxxxxxx" });
  await w.write({ i: "more" }, undefined);
  await w.close();
  const w2 = await Sinks.file(path).createWriter(standaloneContext({ nc }));
  await w2.write({ i: "again" }, undefined);
  await w2.close();
  const all = readFileSync(path, "utf8").trimEnd().split("\n");
  assert.is(all.length, 20_002);
  assert.equal(all.slice(-2).map((l) => JSON.parse(l)), [{ i: "more" }, { i: "again" }], "close flushes; reopening appends");
});

s("lines writes strings as they are; the linger time writes without a flush", async () => {
  const path = join(dir, "words.txt");
  writeFileSync(path, "");
  const w = await Sinks.file(path, { format: "lines", lingerMs: 10 }).createWriter(standaloneContext({ nc }));
  await w.write("hello", undefined);
  await w.write({ not: "a string" }, undefined);
  await new Promise((r) => setTimeout(r, 100));
  assert.is(readFileSync(path, "utf8"), 'hello\n{"not":"a string"}\n');
  await w.close();
});

s("an unwritable path is a one-line error naming it", async () => {
  const path = join(dir, "words.txt", "cannot-be-under-a-file.jsonl");
  const err = await Sinks.file(path).createWriter(standaloneContext({ nc })).catch((e) => e);
  assert.instance(err, WeirError);
  assert.match(err.message, /^Sinks.file: opening ".*cannot-be-under-a-file.jsonl" failed: /);
});

const visible = (d: string) => readdirSync(d).filter((n) => !n.startsWith(".")).sort();
const records = (d: string, name: string) => readFileSync(join(d, name), "utf8").trimEnd().split("\n").map((l) => JSON.parse(l));

s("a directory gets one part file per subtask, visible only once committed at the end of input", async () => {
  const d = join(dir, "parts") + "/";
  const def = Sinks.file(d);
  assert.is(def.defaultParallelism, undefined, "a directory: the job's parallelism");
  const writers = await Promise.all([0, 1].map((i) => def.createWriter(standaloneContext({ nc, subtaskIndex: i, parallelism: 2 }))));
  for (let i = 0; i < 10_000; i++) { const p = writers[i % 2]!.write({ i }, undefined); if (p) await p; }
  await new Promise((r) => setTimeout(r, 300)); // past the linger time: written, but in progress
  assert.equal(visible(d), [], "nothing visible before the commit");
  assert.is(readdirSync(d).filter((n) => n.endsWith(".inprogress")).length, 2, "written under in-progress names");
  for (const w of writers) { await w.flush(); await w.close(); }
  assert.equal(visible(d), ["part-0-0.jsonl", "part-1-0.jsonl"]);
  assert.is(readdirSync(d).length, 2, "no in-progress file left");
  assert.is(records(d, "part-0-0.jsonl").length + records(d, "part-1-0.jsonl").length, 10_000);

  // A failed or cancelled writer (closed without the end of input) commits nothing and leaves nothing.
  const failed = await def.createWriter(standaloneContext({ nc, subtaskIndex: 0, parallelism: 2 }));
  await failed.write({ i: -1 }, undefined);
  await new Promise((r) => setTimeout(r, 300));
  await failed.close();
  assert.is(readdirSync(d).length, 2, "the failed run left no part");

  // A rerun counts on: the next parts do not overwrite the committed ones.
  const again = await def.createWriter(standaloneContext({ nc, subtaskIndex: 0, parallelism: 2 }));
  await again.write({ i: "again" }, undefined);
  await again.flush();
  await again.close();
  assert.equal(visible(d), ["part-0-0.jsonl", "part-0-1.jsonl", "part-1-0.jsonl"]);
});

s("with checkpoints a part is committed when its checkpoint completes; a restore commits it and drops later writes", async () => {
  const d = join(dir, "checkpointed");
  const ctx = { nc, subtaskIndex: 0, parallelism: 1, checkpointing: true };
  const w = await Sinks.file(d + "/", { lingerMs: 10 }).createWriter(standaloneContext(ctx));
  await w.write({ i: 1 }, undefined);
  await w.write({ i: 2 }, undefined);
  const state = await w.snapshotState!(1);
  await w.write({ i: 3 }, undefined); // after checkpoint 1: never committed (the job "dies" here)
  await new Promise((r) => setTimeout(r, 200)); // past the linger time: on disk, in progress
  assert.equal(readdirSync(d).sort(), [".part-0-0.inprogress", ".part-0-1.inprogress"]);
  assert.equal(visible(d), [], "closed by the checkpoint but not committed");
  const restored = await Sinks.file(d).createWriter(standaloneContext({ ...ctx, restoredState: [{ index: 0, parallelism: 1, state }] }));
  assert.equal(visible(d), ["part-0-0.jsonl"], "the restore commits checkpoint 1's part");
  assert.equal(records(d, "part-0-0.jsonl"), [{ i: 1 }, { i: 2 }]);
  assert.equal(readdirSync(d).filter((n) => n.endsWith(".inprogress")), [], "what came after the checkpoint is dropped");
  await restored.write({ i: 3 }, undefined);
  await restored.snapshotState!(2);
  assert.equal(visible(d), ["part-0-0.jsonl"]);
  await restored.notifyCheckpointComplete!(2);
  assert.equal(visible(d), ["part-0-0.jsonl", "part-0-1.jsonl"]);
  assert.equal(records(d, "part-0-1.jsonl"), [{ i: 3 }], "each record in exactly one committed part");
  await restored.flush();
  await restored.close();
  await w.close(); // the "dead" writer's handle
});

s("a batch job of parallelism 2 writes a part per subtask, read back by Sources.file over the directory", async () => {
  const d = join(dir, "job-out") + "/";
  const env = StreamEnvironment.create({ name: "file-parts", nats: server.url, parallelism: 2, mode: "batch" }, { log: () => {} });
  try {
    env.fromSource(Sources.array(Array.from({ length: 4000 }, (_, i) => ({ i }))), { parallelism: 2 }).sinkTo(Sinks.file(d));
    await env.execute();
    assert.equal(visible(d), ["part-0-0.jsonl", "part-1-0.jsonl"]);
    const back = await env.fromSource(Sources.file(d, { format: "jsonl" })).executeAndCollect();
    assert.equal(back.map((r) => (r as { i: number }).i).sort((a, b) => a - b), Array.from({ length: 4000 }, (_, i) => i));
  } finally {
    await env.close();
  }
});

s.run();
