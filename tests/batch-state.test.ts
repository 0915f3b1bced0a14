// Batch mode's keyed state (README "Bounded jobs": each key's state lives in memory while the key runs and
// is never stored): list appends stay there too, and a value streaming would refuse is refused in batch.
import { suite } from "uvu";
import * as assert from "uvu/assert";
import * as t from "io-ts";
import { Kvm } from "@nats-io/kv";
import { connect } from "@nats-io/transport-node";
import { listState, mapState, Sources, StreamEnvironment, valueState, type JobOptions, type SinkDef } from "../mod.ts";
import { JobNames } from "../runtime/internal.ts";
import { withServer } from "./helpers/nats-server.ts";

const test = suite("batch state");
const nats = withServer(test);

const kept = <T>(into: T[]): SinkDef<T> => ({ kind: "test", createWriter: async () => ({ write: (v: T) => { into.push(v); }, flush: async () => {}, close: async () => {} }) });
const seen = listState("seen", t.number);
const blob = valueState("blob", t.unknown);
const latest = mapState("latest", t.string, t.number);

/** Keys of the job's state bucket (none when it has no bucket). */
async function stateKeys(job: string): Promise<string[]> {
  const nc = await connect({ servers: nats.url });
  try {
    const kv = await new Kvm(nc).open(new JobNames(job).stateBucket);
    const keys: string[] = [];
    for await (const k of await kv.keys()) keys.push(k);
    return keys;
  } finally {
    await nc.close();
  }
}

test("a batch job's list appends stay in the key's state while it runs: none is written to KV, and the lists are whole", async () => {
  const name = "batch-lists";
  const env = StreamEnvironment.create({ name, nats: nats.url, parallelism: 1, mode: "batch", stateBackend: "jetstream-kv" }, { log: () => {} });
  const lengths: string[] = [];
  try {
    env.fromSource(Sources.array(Array.from({ length: 30 }, (_, i) => ({ k: `k${i % 3}`, v: i }))))
      .keyBy((e) => e.k)
      .process<string>({
        async processElement(e, c) {
          await c.state(seen).add(e.v); // only appends until the key's last record: no read first
          if (e.v >= 27) c.collect(`${e.k}:${(await c.state(seen).get()).join(",")}`);
        },
      })
      .sinkTo(kept(lengths));
    await env.execute();
  } finally {
    await env.close();
  }
  assert.equal(lengths.sort(), ["k0:0,3,6,9,12,15,18,21,24,27", "k1:1,4,7,10,13,16,19,22,25,28", "k2:2,5,8,11,14,17,20,23,26,29"]);
  // Before: every append to a list the key's state did not hold yet went to KV, and stayed for the job's next run.
  assert.equal(await stateKeys(name), [], "batch mode stores no state");
});

/** What a job writes, in `mode`, that puts, removes, iterates and clears a map state per key. */
async function mapOutputs(name: string, mode: "batch" | "streaming"): Promise<string[]> {
  const env = StreamEnvironment.create({ name, nats: nats.url, parallelism: 1, mode, stateBackend: "jetstream-kv" }, { log: () => {} });
  const out: string[] = [];
  try {
    env.fromSource(Sources.array(Array.from({ length: 40 }, (_, i) => ({ k: `k${i % 3}`, v: i }))))
      .keyBy((e) => e.k)
      .process<string>({
        async processElement(e, c) {
          const m = c.state(latest);
          await m.put(`u${e.v % 4}`, e.v);
          if (e.v % 5 === 0) await m.remove(`u${(e.v + 1) % 4}`);
          const seen: string[] = [];
          for await (const [k, v] of m.entries()) seen.push(`${k}=${v}`);
          if (e.v % 7 === 0) await m.clear();
          c.collect(`${e.k}/${e.v}: ${seen.join(",")} ${await m.isEmpty()} ${await m.get(`u${e.v % 4}`)}`);
        },
      })
      .sinkTo(kept(out));
    await env.execute();
  } finally {
    await env.close();
  }
  return out.sort();
}

test("a batch job's map state is iterated and cleared within the key's state, as streaming sees it, and none is written to KV", async () => {
  const streamed = await mapOutputs("batch-maps-streamed", "streaming");
  assert.is(streamed.length, 40);
  assert.equal(await mapOutputs("batch-maps", "batch"), streamed);
  // Before: the first iteration of a key's map wrote its entries (and its index) to KV, where they stayed.
  assert.equal(await stateKeys("batch-maps"), [], "batch mode stores no state");
});

/** The job's failure message: a value written as `write` makes it, in `mode`. */
async function failureOf(mode: "batch" | "streaming", write: "map" | "large list", options: Partial<JobOptions> = {}): Promise<string> {
  const env = StreamEnvironment.create({ name: `batch-check-${mode}-${write.replace(" ", "-")}`, nats: nats.url, parallelism: 1, mode, stateBackend: "heap", ...options }, { log: () => {} });
  try {
    env.fromSource(Sources.array(Array.from({ length: 20 }, (_, i) => ({ k: "a", v: i }))))
      .keyBy((e) => e.k)
      .process<number>({
        async processElement(e, c) {
          if (write === "map") await c.state(blob).update({ seen: new Map([[e.v, true]]) });
          else await c.state(seen).add(e.v * 1_000_000_007);
          c.collect(e.v);
        },
      })
      .sinkTo(kept([]));
    return await env.execute().then(() => "no failure", (e: Error) => e.message);
  } finally {
    await env.close();
  }
}

test("batch mode refuses what streaming refuses: a value that cannot be stored as JSON, a list over maxValueBytes", async () => {
  for (const mode of ["streaming", "batch"] as const) {
    assert.match(await failureOf(mode, "map"), /state "blob" for key "a": the value cannot be stored as JSON: \.seen is a Map/, mode);
    assert.match(await failureOf(mode, "large list", { state: { maxValueBytes: 100 } }), /state "seen" for key "a": the value is 1\d\d bytes, more than maxValueBytes 100; it was not stored$/, mode);
  }
});

test.run();
