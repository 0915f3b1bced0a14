import { suite } from "uvu";
import * as assert from "uvu/assert";
import * as t from "io-ts";
import { mkdtempSync, rmSync, writeFileSync, createWriteStream } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { connect, type NatsConnection } from "@nats-io/transport-node";
import { jetstream } from "@nats-io/jetstream";
import { withServer } from "./helpers/nats-server.ts";
import { Sources } from "../runtime/sources/mod.ts";
import { payloadDecoder } from "../runtime/sources/decode.ts";
import { standaloneContext } from "./helpers/standalone-context.ts";
import type { SourceReader } from "../runtime/contracts/connectors.ts";
import { WeirError } from "../runtime/core/errors.ts";
import { mkdirSync } from "node:fs";
import { StreamEnvironment } from "../runtime/api/environment.ts";

const fixtures = new URL("./fixtures/", import.meta.url).pathname;
const s = suite("Sources.file");
const server = withServer(s);
let nc: NatsConnection;
let dir: string;
s.before(async () => { nc = await connect({ servers: server.url }); dir = mkdtempSync(join(tmpdir(), "weir-file-src-")); });
s.after(async () => { await nc?.close(); rmSync(dir, { recursive: true, force: true }); });

async function readAll<T>(reader: SourceReader<T>): Promise<{ values: T[]; batches: number[] }> {
  const values: T[] = [];
  const batches: number[] = [];
  for (let b = await reader.pollNext(); b !== null; b = await reader.pollNext()) {
    values.push(...b.values);
    batches.push(b.values.length);
  }
  return { values, batches };
}

async function letters(job: string, n: number): Promise<Array<Record<string, unknown>>> {
  const c = await jetstream(nc).consumers.get(`weir_${job}_dlq`);
  const out: Array<Record<string, unknown>> = [];
  for await (const m of await c.fetch({ max_messages: n, expires: 2000 })) out.push(m.json());
  return out;
}

const NumberFromString = new t.Type<number, string, unknown>(
  "NumberFromString",
  (u): u is number => typeof u === "number",
  (u, c) => (typeof u === "string" && u.trim() !== "" && !Number.isNaN(Number(u)) ? t.success(Number(u)) : t.failure(u, c)),
  String,
);

s("jsonl: records in order; bad JSON and codec failures → DLQ with line numbers", async () => {
  const Event = t.type({ user: t.string, n: t.number }, "Event");
  const ctx = standaloneContext({ nc, job: "filejsonl" });
  const reader = await Sources.file(join(fixtures, "events.jsonl"), { format: "jsonl", codec: Event }).createReader(ctx);
  const { values } = await readAll(reader);
  assert.equal(values, [{ user: "a", n: 1 }, { user: "b", n: 2 }, { user: "e", n: 5 }]);
  assert.is(ctx.deadLetters.count, 2);
  await ctx.publisher.flush();
  const ls = await letters("filejsonl", 2);
  assert.equal(ls.map((l) => l.line), [3, 5]);
  assert.match(String(ls[0]!.reason), /^line 3: invalid JSON/);
  assert.match(String(ls[1]!.reason), /^line 5: codec Event: n: expected number, got "four"/);
  assert.is(ls[1]!.data, '{"user":"d","n":"four"}');
  await reader.close();
});

s("csv: header row gives objects of strings; a codec converts; bad rows → DLQ with line numbers", async () => {
  const raw = await readAll(await Sources.file(join(fixtures, "events.csv"), { format: "csv" }).createReader(standaloneContext({ nc, job: "filecsv1" })));
  assert.equal(raw.values[0], { user: "a", n: "1", city: "Oslo" }, "numbers stay strings without a codec");

  const Row = t.type({ user: t.string, n: NumberFromString, city: t.string }, "Row");
  const ctx = standaloneContext({ nc, job: "filecsv" });
  const reader = await Sources.file(join(fixtures, "events.csv"), { format: "csv", codec: Row }).createReader(ctx);
  const { values } = await readAll(reader);
  assert.equal(values, [
    { user: "a", n: 1, city: "Oslo" },
    { user: "b", n: 2, city: "Rome, IT" },
    { user: "e", n: 5, city: "New\r\nYork" },
  ]);
  await ctx.publisher.flush();
  const ls = await letters("filecsv", 2);
  assert.equal(ls.map((l) => l.line), [4, 5]);
  assert.match(String(ls[0]!.reason), /^line 4: Invalid Record Length/);
  assert.match(String(ls[1]!.reason), /^line 5: codec Row: n: expected NumberFromString, got "x"/);
  assert.is(ls[1]!.data, "d,x,Lima\r");
  await reader.close();
});

s("lines: every line as a string, UTF-8 intact, the last line without a newline too", async () => {
  const reader = await Sources.file(join(fixtures, "words.txt"), { format: "lines" }).createReader(standaloneContext({ nc }));
  const { values } = await readAll(reader);
  assert.equal(values, ["first line", "second line", "", "üñï 😀", "last line without newline"]);
});

s("a large file is streamed in chunk-sized batches; offsets resume at the byte", async () => {
  const path = join(dir, "big.jsonl");
  const out = createWriteStream(path);
  for (let i = 0; i < 200_000; i++) out.write(`{"i":${i},"text":"${"é".repeat(i % 7)}"}\n`);
  await new Promise((r) => out.end(r));
  const reader = await Sources.file(path, { format: "jsonl" }).createReader(standaloneContext({ nc }));
  const firstHalf: Array<{ i: number }> = [];
  while (firstHalf.length < 100_000) firstHalf.push(...((await reader.pollNext())!.values as Array<{ i: number }>));
  const state = reader.snapshotState!(1);
  await reader.close();
  const resumed = await Sources.file(path, { format: "jsonl" }).createReader(standaloneContext({ nc, restoredState: state }));
  const { values, batches } = await readAll(resumed);
  const all = [...firstHalf, ...(values as Array<{ i: number }>)].map((v) => v.i);
  assert.is(all.length, 200_000);
  assert.ok(all.every((v, i) => v === i), "in order, none lost or repeated");
  assert.ok(Math.max(...batches) < 5000, `batches stay chunk-sized (max ${Math.max(...batches)})`);
});

s("a line that is not valid UTF-8 is a dead letter with its bytes, never a record with U+FFFD; a very long line is read whole", async () => {
  const path = join(dir, "latin1.jsonl");
  const long = "x".repeat(3_000_000);
  writeFileSync(path, Buffer.concat([Buffer.from('{"name":"ok"}\n{"name":"caf'), Buffer.from([0xe9]), Buffer.from(`"}\n{"name":"${long}"}\n{"name":"last"}`)]));
  const ctx = standaloneContext({ nc, job: "fileutf8" });
  const reader = await Sources.file(path, { format: "jsonl" }).createReader(ctx);
  const { values } = await readAll(reader);
  assert.equal((values as Array<{ name: string }>).map((v) => v.name.length > 10 ? `long ${v.name.length}` : v.name), ["ok", "long 3000000", "last"]);
  assert.is(ctx.deadLetters.count, 1);
  await ctx.publisher.flush();
  const [letter] = await letters("fileutf8", 1);
  assert.is(letter!.line, 2);
  assert.match(String(letter!.reason), /^line 2: not valid UTF-8/);
  await reader.close();
});

s("dead letters a full DLQ stream refuses: an error-level line each, naming where they came from", async () => {
  const { jetstreamManager } = await import("@nats-io/jetstream");
  await (await jetstreamManager(nc)).streams.add({ name: "weir_fullq_dlq", subjects: ["weir.fullq.dlq"], max_msgs: 2, discard: "new" as never });
  const lines: Array<{ m: string; level: unknown }> = [];
  const path = join(dir, "bad.jsonl");
  writeFileSync(path, "nope1\nnope2\nnope3\nnope4\n");
  const ctx = standaloneContext({ nc, job: "fullq", log: ((m: string, f?: { level?: string }) => { lines.push({ m, level: f?.level }); }) as (m: string) => void });
  const reader = await Sources.file(path, { format: "jsonl" }).createReader(ctx);
  await readAll(reader);
  await ctx.publisher.flush();
  await reader.close();
  const refused = lines.filter((l) => /could not be stored in weir_fullq_dlq/.test(l.m));
  assert.is(refused.length, 2, lines.map((l) => l.m).join("\n"));
  for (const l of refused) {
    assert.is(l.level, "error");
    assert.match(l.m, /^dead letter from .*file .*bad\.jsonl.* \(line \d: invalid JSON/);
  }
});

s("csv restored at its end: a checkpoint before any new row keeps that line, so a second restore reads nothing again", async () => {
  const path = join(dir, "ten.csv");
  writeFileSync(path, `n\n${Array.from({ length: 10 }, (_, i) => i).join("\n")}\n`);
  const def = Sources.file(path, { format: "csv" });
  const first = await def.createReader(standaloneContext({ nc }));
  assert.is((await readAll(first)).values.length, 10);
  const atEnd = first.snapshotState!(1);
  await first.close();
  // Restored at the end: nothing is read, and its checkpoint (taken before any row) must say the same line.
  const second = await def.createReader(standaloneContext({ nc, restoredState: atEnd }));
  const again = second.snapshotState!(2);
  assert.is((await readAll(second)).values.length, 0);
  await second.close();
  const third = await def.createReader(standaloneContext({ nc, restoredState: again }));
  assert.is((await readAll(third)).values.length, 0, "the file is not read a second time");
  await third.close();
});

s("csv: a row with a stray quote is that row's dead letter; the rows after it are read (it swallowed all of them)", async () => {
  const path = join(dir, "stray-quote.csv");
  writeFileSync(path, `id,name\n1,"a"x,2\n${Array.from({ length: 2000 }, (_, i) => `${i + 2},"n, ${i}"`).join("\n")}\n`);
  const ctx = standaloneContext({ nc, job: "strayquote" });
  const { values } = await readAll(await Sources.file(path, { format: "csv" }).createReader(ctx));
  assert.is(values.length, 2000);
  assert.equal(values[0], { id: "2", name: "n, 0" });
  assert.is(ctx.deadLetters.count, 1);
  await ctx.publisher.flush();
  const [letter] = await letters("strayquote", 1);
  assert.is(letter!.line, 2);
  assert.is(letter!.data, '1,"a"x,2\n');
});

s("a byte order mark is stripped at the file's start only: a U+FEFF starting a later line, at a chunk's start too, is data", async () => {
  const path = join(dir, "bom.txt");
  // Line 1 fills the first 64 KiB read exactly: line 2 starts the next chunk.
  writeFileSync(path, `\uFEFF${"x".repeat(64 * 1024 - 4)}\n\uFEFFb\nc\uFEFF\n`);
  const { values } = await readAll(await Sources.file(path, { format: "lines" }).createReader(standaloneContext({ nc })));
  assert.equal(values.map((v) => (v as string).length), [64 * 1024 - 4, 2, 2]);
  assert.is((values[1] as string).charCodeAt(0), 0xfeff);
  // A message is no file: its leading U+FEFF is data.
  const text = payloadDecoder<string>("text" as never, undefined, "t", standaloneContext({ nc }).deadLetters);
  assert.is(text(new TextEncoder().encode("\uFEFFhello"), "s", 1), "\uFEFFhello");
});

s("csv: a header naming a column twice is a one-line error naming the file and the column (a row kept only the last value)", async () => {
  const path = join(dir, "dup-header.csv");
  writeFileSync(path, "a,a,b\n1,2,3\n");
  const reader = await Sources.file(path, { format: "csv" }).createReader(standaloneContext({ nc }));
  const error = await readAll(reader).then(() => "read", (e: Error) => e.message);
  assert.match(error, /^Sources\.file: reading ".*dup-header\.csv" failed: the header names column "a" twice/);
  await reader.close();
});

s("a missing file is a one-line error naming the path; bad options too", async () => {
  const path = join(dir, "nope.jsonl");
  const err = await Sources.file(path, { format: "jsonl" }).createReader(standaloneContext({ nc })).catch((e) => e);
  assert.instance(err, WeirError);
  assert.is(err.message, `Sources.file: cannot read "${path}": no such file`);
  assert.throws(() => Sources.file(path, { format: "xml" as "csv" }), /Sources.file\(".*nope.jsonl"\): format/);
});

s("csv without a header gives arrays; subtasks other than 0 end at once", async () => {
  const path = join(dir, "plain.csv");
  writeFileSync(path, "1,2\n3,4\n");
  const def = Sources.file(path, { format: "csv", header: false });
  assert.equal((await readAll(await def.createReader(standaloneContext({ nc })))).values, [["1", "2"], ["3", "4"]]);
  assert.is(def.defaultParallelism, 1);
  const other = await def.createReader(standaloneContext({ nc, subtaskIndex: 1, parallelism: 2 }));
  assert.is(await other.pollNext(), null);
});

/** `files` jsonl files of `per` records each under `into`, plus a hidden file and a subdirectory to skip. */
function writeFiles(into: string, files: number, per: number, first = 0): void {
  mkdirSync(join(into, "sub"), { recursive: true });
  for (let f = 0; f < files; f++) {
    writeFileSync(join(into, `f${f}.jsonl`), Array.from({ length: per }, (_, i) => JSON.stringify({ f: first + f, i })).join("\n") + "\n");
  }
  writeFileSync(join(into, ".hidden.jsonl"), '{"f":-1,"i":0}\n');
  writeFileSync(join(into, "sub", "nested.jsonl"), '{"f":-2,"i":0}\n');
}

const key = (v: unknown) => { const r = v as { f: number; i: number }; return `${r.f}:${r.i}`; };

s("a directory is split across 2 subtasks: each file read by one, every record once", async () => {
  const d = join(dir, "split");
  writeFiles(d, 5, 300);
  const def = Sources.file(d, { format: "jsonl" });
  assert.is(def.defaultParallelism, undefined, "several files: the job's parallelism");
  const parts = await Promise.all([0, 1].map(async (i) => (await readAll(await def.createReader(standaloneContext({ nc, subtaskIndex: i, parallelism: 2 })))).values));
  const files = parts.map((vs) => [...new Set(vs.map((v) => (v as { f: number }).f))].sort());
  assert.equal(files, [[0, 2, 4], [1, 3]], "file k to subtask k % 2; hidden files and subdirectories skipped");

  // The same in a job of parallelism 2.
  const env = StreamEnvironment.create({ name: "file-dir", nats: server.url, parallelism: 2, mode: "batch" }, { log: () => {} });
  try {
    const got = await env.fromSource(Sources.file(d, { format: "jsonl" })).executeAndCollect();
    const keys = got.map(key);
    assert.is(keys.length, 1500);
    assert.is(new Set(keys).size, 1500, "none twice");
  } finally {
    await env.close();
  }
});

s("a glob picks files across directories; positions are by file and survive a change of parallelism", async () => {
  const d = join(dir, "globbed");
  writeFiles(join(d, "a"), 2, 1000);
  writeFiles(join(d, "b"), 2, 1000, 10);
  writeFileSync(join(d, "a", "skip.csv"), "x\n1\n");
  const pattern = join(d, "*", "f*.jsonl");
  const def = Sources.file(pattern, { format: "jsonl" });
  // Subtask 0 of 2 reads one batch, then the job is restored at parallelism 1 from both subtasks' states.
  const r0 = await def.createReader(standaloneContext({ nc, subtaskIndex: 0, parallelism: 2 }));
  const r1 = await def.createReader(standaloneContext({ nc, subtaskIndex: 1, parallelism: 2 }));
  const before = [...(await r0.pollNext())!.values, ...(await readAll(r1)).values];
  const states = [r0.snapshotState!(1), r1.snapshotState!(1)];
  await r0.close();
  const after = (await readAll(await def.createReader(standaloneContext({ nc, restoredState: states })))).values;
  const keys = [...before, ...after].map(key);
  assert.is(keys.length, 4000, `every record (${before.length} before, ${after.length} after the restore)`);
  assert.is(new Set(keys).size, 4000, "none twice");
  const err = await Sources.file(join(d, "*.nothing"), { format: "jsonl" }).createReader(standaloneContext({ nc })).catch((e) => e);
  assert.match(err.message, /^Sources.file: cannot read ".*\*\.nothing": no files match$/);
});

s("one file restored from a job's checkpoint (every subtask's state, an array) resumes at its byte", async () => {
  const path = join(dir, "resume.jsonl");
  writeFileSync(path, Array.from({ length: 30_000 }, (_, i) => JSON.stringify({ f: 0, i })).join("\n"));
  const r = await Sources.file(path, { format: "jsonl" }).createReader(standaloneContext({ nc }));
  const first = (await r.pollNext())!.values;
  const state = r.snapshotState!(1);
  await r.close();
  const rest = (await readAll(await Sources.file(path, { format: "jsonl" }).createReader(standaloneContext({ nc, restoredState: [state] })))).values;
  assert.is(first.length + rest.length, 30_000, "restarted where it was, not from the start");
});

s.run();
