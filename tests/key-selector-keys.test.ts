// A key selector's result is compared as JSON (hash, key groups, state): a key JSON cannot hold would be
// one key for every record (each Date, Map or Set is {}, NaN null), counts of different keys silently
// added together. Such a key fails the job in one line naming the operator; plain composite keys work.
import { suite } from "uvu";
import * as assert from "uvu/assert";
import * as t from "io-ts";
import { Sources, StreamEnvironment, valueState, type JobOptions } from "../mod.ts";
import { withServer } from "./helpers/nats-server.ts";

const s = suite("key selector results");
const nats = withServer(s);
let jobs = 0;
const count = valueState("count", t.number);
const days = [{ day: "2026-12-01", n: 1 }, { day: "2026-12-02", n: 2 }, { day: "2026-12-01", n: 3 }];

async function countsBy(key: (r: { day: string; n: number }) => unknown, options: Partial<JobOptions>): Promise<string> {
  const env = StreamEnvironment.create({ name: `keysel${jobs++}`, nats: nats.url, parallelism: 1, stateBackend: "heap", restartStrategy: { type: "none" }, ...options } as JobOptions);
  try {
    const out = await env.fromSource(Sources.array(days), { name: "days" }).keyBy(key).process<number>({
      async processElement(_r, ctx) {
        const n = ((await ctx.state(count).value()) ?? 0) + 1;
        await ctx.state(count).update(n);
        ctx.collect(n);
      },
    }).executeAndCollect();
    return JSON.stringify([...out].sort());
  } catch (e) {
    return (e as Error).message;
  } finally {
    await env.close();
  }
}

for (const mode of ["streaming", "batch"] as const) {
  s(`keys JSON cannot hold are refused in one line (${mode})`, async () => {
    const cases: Array<[string, (r: { day: string; n: number }) => unknown, RegExp]> = [
      ["a Date", (r) => new Date(r.day), /the key is a Date/],
      ["a Set inside", (r) => ({ day: r.day, tags: new Set([r.n]) }), /\.tags is a Set/],
      ["NaN", (r) => Number(r.day), /the key is NaN/],
      ["a function", () => () => 1, /the key is a function/],
    ];
    for (const [what, key, reason] of cases) {
      const message = await countsBy(key, { mode });
      assert.match(message, /operator "days \(keyBy\)".*the key selector returned a key JSON cannot hold/, `${what}: ${message}`);
      assert.match(message, reason, what);
      assert.not.match(message, /\n/, `${what}: one line`);
    }
  });

  s(`composite plain keys still key by value (${mode})`, async () => {
    assert.equal(await countsBy((r) => ({ day: r.day, at: [Date.parse(r.day)] }), { mode }), "[1,1,2]");
    // An optional field left undefined is absent, as in JSON (it was a key apart, equal to its null).
    assert.equal(await countsBy((r) => (r.n === 3 ? { day: r.day } : { day: r.day, note: undefined }), { mode }), "[1,1,2]");
  });
}

s.run();
