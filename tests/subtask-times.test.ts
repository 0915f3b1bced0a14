// What `weir status` and /metrics say a subtask spends its time on: busy, idle (waiting for input) and
// backpressured only ever grow (they are Prometheus counters), and a subtask waiting for input counts
// that wait as idle while it lasts, not only once it ended.
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { Sources, StreamEnvironment } from "../mod.ts";
import { withServer } from "./helpers/nats-server.ts";

const test = suite("subtask times");
const nats = withServer(test);

test("busy and idle never go down; a subtask fed 20 records a second is mostly idle", async () => {
  const env = StreamEnvironment.create({ name: "subtask-times", nats: nats.url, parallelism: 1, stateBackend: "heap" }, { log: () => {} });
  try {
    env.fromSource(Sources.generator({ ratePerSec: 20, make: (i) => ({ k: `k${i % 3}` }) }), { name: "gen" })
      .keyBy((e) => e.k)
      .map((e) => e.k, { name: "keys" })
      .sinkTo({ kind: "discard", createWriter: async () => ({ write: () => {}, flush: async () => {}, close: async () => {} }) }, { name: "out" });
    const client = await env.executeAsync();
    const seen = new Map<string, { busy: number; idle: number }[]>();
    for (let i = 0; i < 60; i++) {
      await new Promise((r) => setTimeout(r, 50));
      for (const s of client.status().subtasks) {
        const list = seen.get(s.id) ?? [];
        list.push({ busy: s.busyMs ?? 0, idle: s.idleMs ?? 0 });
        seen.set(s.id, list);
      }
    }
    await client.cancel();
    const downstream = [...seen].find(([id]) => id.startsWith("keys"));
    assert.ok(downstream, `a subtask of "keys" among ${[...seen.keys()].join(", ")}`);
    for (const [id, list] of seen) {
      for (let i = 1; i < list.length; i++) {
        assert.ok(list[i]!.busy >= list[i - 1]!.busy, `${id} busy went down: ${list[i - 1]!.busy} → ${list[i]!.busy}`);
        assert.ok(list[i]!.idle >= list[i - 1]!.idle, `${id} idle went down: ${list[i - 1]!.idle} → ${list[i]!.idle}`);
      }
    }
    const last = downstream[1][downstream[1].length - 1]!;
    assert.ok(last.idle > last.busy, `"keys" waits for input most of the time: idle ${last.idle} ms, busy ${last.busy} ms`);
  } finally {
    await env.close();
  }
});

test.run();
