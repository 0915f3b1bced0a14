// A job changed between a checkpoint and its restore, as Flink users change them: another maxParallelism
// is refused in one line (keyed state would land in key groups no subtask owns: a restart loop), and
// state dropped with allowNonRestoredState stays dropped when an operator of that uid comes back (KV
// kept it and handed it back; the heap did not).
import { suite } from "uvu";
import * as assert from "uvu/assert";
import * as t from "io-ts";
import { Sources, StreamEnvironment, valueState, type JobOptions } from "../mod.ts";
import { withServer } from "./helpers/nats-server.ts";
import { within } from "./helpers/cli.ts";

const s = suite("restore after a job change");
const nats = withServer(s);
const count = valueState("count", t.number);
const keys = Array.from({ length: 40 }, (_, i) => `k${i % 8}`);
let runs = 0;

/**
 * The keys counted per key (uid "counts"), or, when `withCounts` is false, mapped without state. Each run
 * reads the input again: a new source uid (the old one's position is dropped with allowNonRestoredState).
 */
async function run(name: string, options: Partial<JobOptions>, withCounts = true): Promise<number[]> {
  const env = StreamEnvironment.create({ name, nats: nats.url, checkpointIntervalMs: 100, mode: "streaming", parallelism: 2, allowNonRestoredState: true, ...options });
  try {
    const input = env.fromSource(Sources.array(keys), { uid: `keys-${runs++}` });
    const counted = withCounts
      ? input.keyBy((k) => k).process<number>({
        async processElement(_k, ctx) {
          const n = ((await ctx.state(count).value()) ?? 0) + 1;
          await ctx.state(count).update(n);
          ctx.collect(n);
        },
      }, { uid: "counts" })
      : input.map(() => 0, { uid: "zeros" });
    const out = await within(counted.executeAndCollect(), 60_000);
    if (out === undefined) throw new Error(`job ${name} did not end within 60 s`);
    return out;
  } finally {
    await env.close();
  }
}

s("a restore under another maxParallelism is refused in one line", async () => {
  await run("maxp", { maxParallelism: 4 });
  const err = await run("maxp", {}).then(() => "restored", (e: Error) => e.message);
  assert.match(err, /was taken with maxParallelism 4, and this job has 128: .*set maxParallelism back to 4/);
});

for (const stateBackend of ["jetstream-kv", "heap"] as const) {
  s(`state dropped with allowNonRestoredState stays dropped when its operator comes back (${stateBackend})`, async () => {
    const name = `nrs${stateBackend.length}`;
    assert.is(Math.max(...await run(name, { stateBackend })), 5, "each key counted 5 times");
    await run(name, { stateBackend }, false);
    assert.is(Math.max(...await run(name, { stateBackend })), 5, "counts start again: the dropped state is gone");
  });
}

s.run();
