// What a run starts from, and what its restarts go back to: a restart before the run's first checkpoint
// goes back to what the run started from (`restore: "none"`: nothing, never an earlier run's checkpoint);
// a checkpoint the backend cannot restore fails the run at once (a restart would fail the same way); a
// checkpoint holding state of an operator uid the job no longer has is refused, naming the uid; after a
// `restore: "none"` run, no earlier run's checkpoint is the latest.
import { suite } from "uvu";
import * as assert from "uvu/assert";
import * as t from "io-ts";
import { connect, type NatsConnection } from "@nats-io/transport-node";
import { Sinks, Sources, StreamEnvironment, valueState, type JobOptions, type JobResult } from "../mod.ts";
import { withServer } from "./helpers/nats-server.ts";
import { createStream, publishAll, readStream } from "./helpers/streams.ts";

const points = suite("restore points");
const nats = withServer(points);
let nc: NatsConnection;

const RECORDS = 400;
const KEYS = 8;
const count = valueState("count", t.number);
const countAsText = valueState("count", t.string);

points.before(async () => {
  nc = await connect({ servers: nats.url });
  await createStream(nc, "RP_IN", ["rp.in"]);
  await publishAll(nc, Array.from({ length: RECORDS }, (_, i) => ["rp.in", { id: i, key: `k${i % KEYS}` }] as [string, unknown]));
});
points.after(async () => { await nc?.close(); });

/** `stateAsText`: the state "count" read with another codec than it was written with. */
interface Run { name: string; out: string; uid?: string; sourceUid?: string; failFirst?: boolean; stateAsText?: boolean; options: Partial<JobOptions> }

/** The keyed count over all of RP_IN (bounded) into `out`; the log lines are kept. */
async function run(r: Run): Promise<{ result?: JobResult; error?: string; log: string[] }> {
  const log: string[] = [];
  const env = StreamEnvironment.create({
    name: r.name, nats: nats.url, parallelism: 2, mode: "streaming", checkpointIntervalMs: 100,
    restartStrategy: { type: "fixed-delay", attempts: 2, delayMs: 0 }, ...r.options,
  }, { log: (m) => { log.push(m); if (process.env.RP_DEBUG) console.error(m); } });
  let failed = !r.failFirst;
  env.fromSource(Sources.jetstream({ stream: "RP_IN", subjects: ["rp.in"], codec: t.type({ id: t.number, key: t.string }), bounded: true }), { uid: r.sourceUid ?? "in" })
    .keyBy((e) => e.key)
    .process<{ key: string; n: number }>({
      async processElement(e, ctx) {
        if (!failed) { failed = true; throw new Error("failing once, before any checkpoint"); }
        if (r.stateAsText) await ctx.state(countAsText).value();
        const n = ((await ctx.state(count).value()) ?? 0) + 1;
        await ctx.state(count).update(n);
        ctx.collect({ key: e.key, n });
      },
    }, { uid: r.uid ?? "count" })
    .sinkTo(Sinks.jetstream({ stream: r.out, subject: `${r.out.toLowerCase()}.out` }), { uid: "out" });
  try {
    return { result: await env.execute(), log };
  } catch (e) {
    return { error: (e as Error).message, log };
  } finally {
    await env.close();
  }
}

/** Each key counted 1..n (or on from `from`) exactly once in `stream`: a run that started without state. */
async function assertCountedFromOne(stream: string, from = 0): Promise<void> {
  const out = await readStream<{ key: string; n: number }>(nc, stream);
  const byKey = new Map<string, number[]>();
  for (const o of out) byKey.set(o.key, [...(byKey.get(o.key) ?? []), o.n]);
  for (let k = 0; k < KEYS; k++) {
    assert.equal((byKey.get(`k${k}`) ?? []).sort((a, b) => a - b), Array.from({ length: RECORDS / KEYS }, (_, i) => from + i + 1), `${stream}: key k${k}`);
  }
}

for (const stateBackend of ["heap", "jetstream-kv"] as const) {
  points(`restore "none", then a failure before the first checkpoint: the restart starts from nothing again, not from the previous run's checkpoint (${stateBackend})`, async () => {
    const name = `rpnone${stateBackend.length}`;
    const first = await run({ name, out: `${name.toUpperCase()}_A`, options: { stateBackend } });
    assert.is(first.result?.state, "finished", first.error);
    await assertCountedFromOne(`${name.toUpperCase()}_A`);
    const second = await run({ name, out: `${name.toUpperCase()}_B`, failFirst: true, options: { stateBackend, restore: "none" } });
    assert.is(second.result?.state, "finished", `${second.error}\n${second.log.filter((l) => /restart|fail/.test(l)).join("\n")}`);
    assert.ok(second.log.some((l) => /restarting .* from the beginning/.test(l)), second.log.filter((l) => /restart/.test(l)).join("\n"));
    await assertCountedFromOne(`${name.toUpperCase()}_B`);
  });
}

for (const stateBackend of ["heap", "jetstream-kv"] as const) {
  points(`after a restore "none" run that committed no checkpoint, the next run starts from nothing, not from the erased run's checkpoint (${stateBackend})`, async () => {
    const name = `rpforget${stateBackend.length}`;
    const first = await run({ name, out: `${name.toUpperCase()}_A`, options: { stateBackend } });
    assert.is(first.result?.state, "finished", first.error);
    const fresh = await run({ name, out: `${name.toUpperCase()}_B`, options: { stateBackend, restore: "none", checkpointIntervalMs: 0, restartStrategy: { type: "none" } } });
    assert.is(fresh.result?.state, "finished", fresh.error);
    // On KV the first run's checkpoint refers to state the restore "none" run erased: it failed to restore.
    const next = await run({ name, out: `${name.toUpperCase()}_C`, options: { stateBackend } });
    assert.is(next.result?.state, "finished", next.error);
    // No checkpoint to resume: on the heap nothing; KV keeps what the previous run wrote (README: without
    // checkpoints KV state outlives the process).
    await assertCountedFromOne(`${name.toUpperCase()}_C`, stateBackend === "heap" ? 0 : RECORDS / KEYS);
  });
}

points("a checkpoint the state backend cannot restore fails the run at once, with one line and no restart", async () => {
  const heapRun = await run({ name: "rpkind", out: "RPKIND_A", options: { stateBackend: "heap" } });
  assert.is(heapRun.result?.state, "finished", heapRun.error);
  const kvRun = await run({ name: "rpkind", out: "RPKIND_B", options: { stateBackend: "jetstream-kv" } });
  assert.match(kvRun.error ?? "", "was taken with the heap state backend, and this job runs jetstream-kv: keyed state does not move between backends");
  assert.is(kvRun.error!.split("\n").length, 1);
  assert.equal(kvRun.log.filter((l) => /^restarting/.test(l)), [], "no restart");
});

for (const stateBackend of ["heap", "jetstream-kv"] as const) {
  points(`state its codec cannot read (the codec changed between runs) fails the job at once, naming the state, with no restart (${stateBackend})`, async () => {
    const name = `rpcodec${stateBackend.length}`;
    const first = await run({ name, out: `${name.toUpperCase()}_A`, options: { stateBackend } });
    assert.is(first.result?.state, "finished", first.error);
    // A new source uid reads the input again (the old one's offsets are at its end).
    const changed = await run({ name, out: `${name.toUpperCase()}_B`, sourceUid: "in-again", stateAsText: true, options: { stateBackend, allowNonRestoredState: true } });
    assert.match(changed.error ?? "", /^state "count" for key "k\d": cannot read value: .* \(the stored value does not fit the state's codec: was the codec changed since it was written\?\)$/);
    assert.equal(changed.log.filter((l) => /^restarting/.test(l)), [], "no restart");
  });
}

points("a checkpoint with state of an operator uid the job no longer has is refused, naming the uid", async () => {
  const first = await run({ name: "rpuid", out: "RPUID_A", options: { stateBackend: "heap" } });
  assert.is(first.result?.state, "finished", first.error);
  const renamed = await run({ name: "rpuid", out: "RPUID_B", uid: "count-renamed", options: { stateBackend: "heap" } });
  assert.match(renamed.error ?? "", /holds state of operator uid "count", which this job does not have/);
  const allowed = await run({ name: "rpuid", out: "RPUID_D", uid: "count-renamed", options: { stateBackend: "heap", allowNonRestoredState: true } });
  assert.is(allowed.result?.state, "finished", allowed.error);
  assert.ok(allowed.log.some((l) => /uid "count", which this job does not have: that state is dropped/.test(l)), allowed.log.join("\n"));
  const none = await run({ name: "rpuid", out: "RPUID_C", uid: "count-renamed", options: { stateBackend: "heap", restore: "none" } });
  assert.is(none.result?.state, "finished", none.error);
  await assertCountedFromOne("RPUID_C");
});

points.run();
