// Records cross a network edge (keyBy, a change of parallelism) as JSON: a Map or a Set in a record came
// out of the next subtask as {} without a word (a reduce over sets of ids summed nothing), while a chained
// operator saw it whole. Such a record now goes to the dead letters with the path of the Map, as a record
// JSON cannot encode (a cycle, a bigint) already did; plain records around it go through.
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { connect, type NatsConnection } from "@nats-io/transport-node";
import { jetstream, jetstreamManager } from "@nats-io/jetstream";
import { Sources, StreamEnvironment } from "../mod.ts";
import { encodeRecords } from "../runtime/transport/frames.ts";
import { withServer } from "./helpers/nats-server.ts";
import { eventually } from "./helpers/cli.ts";

const s = suite("records are JSON data");
const nats = withServer(s);

s("the frame encoder refuses a Map or a Set anywhere in a record, and keeps empty plain objects", () => {
  assert.throws(() => encodeRecords([{ k: "a", tags: new Set(["x"]) }], undefined), /\.tags is a Set \(JSON writes \{\}\)/);
  assert.throws(() => encodeRecords([{ k: "a" }, new Map([["k", 1]])], [1, 2]), /the record is a Map/);
  assert.not.throws(() => encodeRecords([{ k: "a", meta: {} }, { k: "b", meta: {} }], undefined));
});

s("a record holding a Set goes to the dead letters naming it; the others reach the keyed operator", async () => {
  let nc: NatsConnection | undefined;
  const env = StreamEnvironment.create({ name: "recjson", nats: nats.url, parallelism: 2, mode: "streaming", stateBackend: "heap" }, { log: () => {} });
  try {
    const out = await env.fromSource(Sources.array([{ k: "a", ids: [1] }, { k: "b", ids: [2] }, { k: "c", ids: [3] }]), { name: "in" })
      .map((r) => (r.k === "b" ? { k: r.k, ids: new Set(r.ids) } : r), { name: "tag" })
      .keyBy((r) => r.k)
      .process<string>({ processElement(r, ctx) { ctx.collect(`${r.k}:${Array.isArray(r.ids) ? r.ids.join() : JSON.stringify(r.ids)}`); } }, { name: "use" })
      .executeAndCollect();
    assert.equal([...out].sort(), ["a:1", "c:3"]);
    nc = await connect({ servers: nats.url });
    const jsm = await jetstreamManager(nc);
    await eventually("the dead letter", 30_000, async () => ((await jsm.streams.info("weir_recjson_dlq").catch(() => undefined))?.state.messages ?? 0) >= 1 || undefined);
    const letter = await (await jetstream(nc).consumers.get("weir_recjson_dlq")).next({ expires: 5000 });
    assert.ok(letter, "a dead letter");
    assert.match(String((letter!.json() as { reason: string }).reason), /cannot be encoded for the next subtask: TypeError: \.ids is a Set \(JSON writes \{\}\)/);
  } finally {
    await env.close();
    await nc?.close();
  }
});

s.run();
