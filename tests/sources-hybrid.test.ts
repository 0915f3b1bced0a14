import { suite } from "uvu";
import * as assert from "uvu/assert";
import { connect, type NatsConnection } from "@nats-io/transport-node";
import { jetstream, jetstreamManager } from "@nats-io/jetstream";
import { withServer } from "./helpers/nats-server.ts";
import { Sources } from "../runtime/sources/mod.ts";
import { standaloneContext } from "./helpers/standalone-context.ts";
import type { SourceReader } from "../runtime/contracts/connectors.ts";
import type { RecordAttributes } from "../runtime/transport/frames.ts";

const fixtures = new URL("./fixtures/", import.meta.url).pathname;
const s = suite("Sources.hybrid");
const server = withServer(s);
let nc: NatsConnection;
s.before(async () => { nc = await connect({ servers: server.url }); });
s.after(async () => { await nc?.close(); });

/** Reads like the subtask does: attributes before each poll; records and attribute changes in order. */
async function run<T>(reader: SourceReader<T>, stopAfter: number, ms = 5000): Promise<Array<T | RecordAttributes>> {
  const out: Array<T | RecordAttributes> = [];
  let n = 0;
  const deadline = Date.now() + ms;
  while (n < stopAfter && Date.now() < deadline) {
    const a = reader.takeAttributes?.();
    if (a) out.push(a);
    const b = await reader.pollNext();
    if (b === null) break;
    out.push(...b.values);
    n += b.values.length;
  }
  return out;
}

s("bounded parts first in order (backlog), then the live part (not backlog)", async () => {
  const live = Sources.nats({ subject: "live.h", format: "text" });
  const def = Sources.hybrid<string>(Sources.array(["a1", "a2"]), Sources.file(`${fixtures}words.txt`, { format: "lines" }), live);
  assert.is(def.bounded, false);
  assert.is(def.defaultParallelism, 1);
  const reader = await def.createReader(standaloneContext({ nc }));
  const first = await run(reader, 7);
  assert.equal(first, [
    { isBacklog: true }, "a1", "a2",
    "first line", "second line", "", "üñï 😀", "last line without newline",
  ]);
  // Now in the live part.
  let attrs: RecordAttributes | undefined;
  for (let i = 0; i < 3 && !attrs; i++) { attrs = reader.takeAttributes!(); if (!attrs) await reader.pollNext(); }
  assert.equal(attrs, { isBacklog: false });
  assert.equal((reader.snapshotState!(1) as { part: number }).part, 2);
  nc.publish("live.h", "now");
  const later = await run(reader, 1);
  assert.equal(later, ["now"]);
  await reader.close();
});

s("offsets record the part and its inner offsets; a restore resumes there", async () => {
  const words = `${fixtures}words.txt`;
  const def = Sources.hybrid<string>(Sources.array(["x", "y"]), Sources.file(words, { format: "lines" }));
  assert.is(def.bounded, true);
  const reader = await def.createReader(standaloneContext({ nc }));
  const got: string[] = [];
  while (got.length < 3) got.push(...((await reader.pollNext())?.values ?? []));
  assert.equal(reader.snapshotState!(1), { part: 1, inner: { path: words, line: 4, byte: 36 } }, "four complete lines of the first chunk");
  // Resume in part 1 after its first two lines ("first line\n" + "second line\n" = 23 bytes).
  const restored = await def.createReader(standaloneContext({ nc, restoredState: { part: 1, inner: { path: words, line: 2, byte: 23 } } }));
  const rest: string[] = [];
  for (let b = await restored.pollNext(); b; b = await restored.pollNext()) rest.push(...b.values);
  assert.equal(rest, ["", "üñï 😀", "last line without newline"]);

  // In a job the checkpoint hands every old subtask's state, as an array in subtask order (a restore read
  // it as one object and began again at part 0: every record counted twice after a crash; audit).
  const readAll = async (r: Awaited<ReturnType<typeof def.createReader>>) => {
    const out: string[] = [];
    for (let b = await r.pollNext(); b; b = await r.pollNext()) out.push(...b.values);
    return out;
  };
  const asJob = await def.createReader(standaloneContext({ nc, restoredState: [{ part: 1, inner: { path: words, line: 2, byte: 23 } }] }));
  assert.equal(await readAll(asJob), rest, "the same from the array a job hands over");
  // Two subtasks checkpointed in different parts: each resumes in its own.
  const mixed = [{ part: 1, inner: { path: words, line: 2, byte: 23 } }, { part: 0, inner: { position: 1 } }];
  const first = await def.createReader(standaloneContext({ nc, parallelism: 2, subtaskIndex: 0, restoredState: mixed }));
  assert.equal(await readAll(first), rest);
  const rescaled = await def.createReader(standaloneContext({ nc, parallelism: 3, subtaskIndex: 0, restoredState: mixed })).then(() => "restored", (e: Error) => e.message);
  assert.match(rescaled, /checkpointed while its 2 subtasks were in different parts \(0, 1\); restore it at parallelism 2/);
});

s("a bounded JetStream part then a live one on the same stream: the live part goes on where the bounded one ended, every message once", async () => {
  const jsm = await jetstreamManager(nc);
  await jsm.streams.add({ name: "HH", subjects: ["hh.>"] });
  const js = jetstream(nc);
  await Promise.all(Array.from({ length: 200 }, (_, i) => js.publish("hh.a", JSON.stringify(i))));
  const reader = await Sources.hybrid<number>(
    Sources.jetstream({ stream: "HH", subjects: ["hh.a"], bounded: true }),
    Sources.jetstream({ stream: "HH", subjects: ["hh.a"] }),
  ).createReader(standaloneContext({ nc }));
  const history = (await run(reader, 200)).filter((x): x is number => typeof x === "number");
  await Promise.all(Array.from({ length: 50 }, (_, i) => js.publish("hh.a", JSON.stringify(200 + i))));
  const live = (await run(reader, 50)).filter((x): x is number => typeof x === "number");
  const more = (await run(reader, 1, 1500)).filter((x): x is number => typeof x === "number");
  await reader.close();
  assert.equal([...history, ...live, ...more], Array.from({ length: 250 }, (_, i) => i));
});

s("a JetStream live part behind its head keeps reporting backlog until it catches up", async () => {
  const jsm = await jetstreamManager(nc);
  await jsm.streams.add({ name: "HY", subjects: ["hy.>"] });
  const js = jetstream(nc);
  for (let i = 0; i < 3000; i += 500) await Promise.all(Array.from({ length: 500 }, (_, k) => js.publish("hy.a", JSON.stringify(i + k))));
  const reader = await Sources.hybrid<unknown>(Sources.array([-1]), Sources.jetstream({ stream: "HY", subjects: ["hy.a"] })).createReader(standaloneContext({ nc }));
  const out = await run(reader, 3001);
  const attrs = out.flatMap((x, i) => (typeof x === "object" ? [{ at: i, ...(x as RecordAttributes) }] : []));
  assert.equal(attrs.map((a) => a.isBacklog), [true, false], "backlog through the switch (the stream is 3000 behind), live once caught up");
  assert.ok(attrs[1]!.at > 2000, `live only within the last 1000 records (at ${attrs[1]!.at})`);
  assert.is(out.length - attrs.length, 3001);
  await reader.close();
});

s("the parts before the last must be bounded", () => {
  assert.throws(() => Sources.hybrid(Sources.nats({ subject: "x" }), Sources.array([1])), /source 1 \(nats\) must be bounded/);
  assert.throws(() => Sources.hybrid(Sources.array([1])), /at least two/);
});

s.run();
