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

s.run();
