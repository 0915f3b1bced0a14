// Two state descriptors of one name in one keyed function are one state: declared with another kind or
// codec they read each other's values (on the heap a value state read a map state's entries as null,
// without a word). As Flink refuses such a descriptor, the job fails in one line naming both; two
// descriptors of the same shape (made inline, per record) are still one state.
import { suite } from "uvu";
import * as assert from "uvu/assert";
import * as t from "io-ts";
import { mapState, Sources, StreamEnvironment, valueState, type JobOptions } from "../mod.ts";
import { withServer } from "./helpers/nats-server.ts";

const s = suite("state name clash");
const nats = withServer(s);
let jobs = 0;

async function run(options: Partial<JobOptions>, body: (ctx: any) => Promise<unknown>): Promise<string> {
  const env = StreamEnvironment.create({ name: `clash${jobs++}`, nats: nats.url, parallelism: 1, mode: "streaming", restartStrategy: { type: "none" }, ...options } as JobOptions, { log: () => {} });
  try {
    const out = await env.fromSource(Sources.array([{ k: "a" }, { k: "a" }]), { name: "in" }).keyBy((e) => e.k)
      .process<unknown>({ async processElement(_e, ctx) { ctx.collect(await body(ctx)); } }, { name: "twice" })
      .executeAndCollect();
    return JSON.stringify(out);
  } catch (e) {
    return (e as Error).message;
  } finally {
    await env.close();
  }
}

for (const stateBackend of ["heap", "jetstream-kv"] as const) {
  s(`a value state and a map state of one name are refused in one line (${stateBackend})`, async () => {
    const message = await run({ stateBackend }, async (ctx) => {
      await ctx.state(mapState("seen", t.string, t.number)).put("x", 1);
      return (await ctx.state(valueState("seen", t.unknown)).value()) ?? "absent";
    });
    assert.is(message, 'state "seen" of operator "twice" is declared twice, as a map state (string → number) and as a value state (unknown): give each state its own name (Flink refuses this too)');
  });

  s(`descriptors of one name and shape made per record are one state (${stateBackend})`, async () => {
    const out = await run({ stateBackend }, async (ctx) => {
      const n = ((await ctx.state(valueState("n", t.number)).value()) ?? 0) + 1;
      await ctx.state(valueState("n", t.number)).update(n);
      return n;
    });
    assert.is(out, "[1,2]");
  });
}

s.run();
