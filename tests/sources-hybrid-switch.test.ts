// Sources.hybrid at a parallelism above 1 switches its subtasks together (Flink's HybridSource): a subtask
// whose history is empty does not open the live part before every other subtask has read its history.
// Parts are test sources that log when each subtask ends its history and opens its live part.
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { Sources, StreamEnvironment, type SinkDef } from "../mod.ts";
import type { SourceDef } from "../runtime/contracts/connectors.ts";
import { withServer } from "./helpers/nats-server.ts";
import { within } from "./helpers/cli.ts";
import { standaloneContext } from "./helpers/standalone-context.ts";
import { connect } from "@nats-io/transport-node";

const test = suite("Sources.hybrid switch");
const nats = withServer(test);

/** Subtask 0 has `slowPolls` batches of history, 5 ms apart; the others none. */
function history(events: string[], slowPolls: number): SourceDef<string> {
  return {
    kind: "test-history",
    bounded: true,
    async createReader(ctx) {
      let polls = ctx.subtaskIndex === 0 ? slowPolls : 0;
      return {
        async pollNext() {
          if (polls === 0) {
            events.push(`history ended ${ctx.subtaskIndex}`);
            return null;
          }
          polls--;
          await new Promise((r) => setTimeout(r, 5));
          return { values: [`h${ctx.subtaskIndex}`] };
        },
        snapshotState: () => ({ polls }),
        async close() {},
      };
    },
  };
}

/** Three records per subtask, then the end. */
function live(events: string[]): SourceDef<string> {
  return {
    kind: "test-live",
    bounded: true,
    async createReader(ctx) {
      events.push(`live opened ${ctx.subtaskIndex}`);
      let left = 3;
      return {
        async pollNext() { return left-- > 0 ? { values: [`l${ctx.subtaskIndex}`] } : null; },
        async close() {},
      };
    },
  };
}

for (const checkpointIntervalMs of [0, 50]) {
  test(`a subtask with no history opens the live part only once every subtask has read its history (checkpoints ${checkpointIntervalMs ? `every ${checkpointIntervalMs} ms` : "off"})`, async () => {
    const events: string[] = [];
    const seen: string[] = [];
    const sink: SinkDef<string> = { kind: "seen", createWriter: async () => ({ write: (v: string) => { seen.push(v); }, flush: async () => {}, close: async () => {} }) };
    const env = StreamEnvironment.create({ name: `hybridswitch${checkpointIntervalMs}`, nats: nats.url, parallelism: 2, mode: "streaming", checkpointIntervalMs }, { log: () => {} });
    try {
      env.fromSource(Sources.hybrid(history(events, 60), live(events))).sinkTo(sink);
      const client = await env.executeAsync();
      const result = await within(client.result(), 60_000);
      assert.is(result?.state, "finished", "the job did not finish within 60 s");
      const lastHistoryEnd = Math.max(events.indexOf("history ended 0"), events.indexOf("history ended 1"));
      const firstLiveOpen = Math.min(...[0, 1].map((i) => events.indexOf(`live opened ${i}`)));
      assert.ok(lastHistoryEnd >= 0 && firstLiveOpen >= 0, events.join(", "));
      assert.ok(firstLiveOpen > lastHistoryEnd, `live opened before every subtask's history ended: ${events.join(", ")}`);
      assert.equal(seen.filter((v) => v.startsWith("h")).length, 60);
      assert.equal(seen.filter((v) => v.startsWith("l")).sort(), ["l0", "l0", "l0", "l1", "l1", "l1"]);
      // While subtask 1 waited, the job kept taking checkpoints (the source loop runs them between polls).
      if (checkpointIntervalMs > 0) assert.ok((client.status().checkpoints?.completed ?? 0) > 0, "no checkpoint completed");
    } finally {
      await env.close();
    }
  });
}

test("restored in different parts: the subtask still reading history switches once it finished, hearing one that started later", async () => {
  const nc = await connect({ servers: nats.url });
  try {
    const def = Sources.hybrid<string>(Sources.array(["h0", "h1", "h2", "h3"]), Sources.array(["l0", "l1"]));
    // Subtask 0 was checkpointed in the live part, subtask 1 at the start of its history.
    const restoredState = [{ part: 1, inner: { position: 0 } }, { part: 0, inner: { position: 0 } }];
    const context = (subtaskIndex: number) => standaloneContext({ nc, parallelism: 2, subtaskIndex, attempt: "a1", restoredState });
    const behind = await def.createReader(context(1));
    const read: string[] = [];
    const poll = async () => { const b = await behind.pollNext(); if (b) read.push(...b.values); return b; };
    for (let i = 0; i < 4; i++) await poll();
    assert.equal(read, ["h1", "h3"], "its history, then it waits: subtask 0 has not said where it is");
    const ahead = await def.createReader(context(0));
    try {
      const deadline = Date.now() + 10_000;
      while (!read.includes("l1") && Date.now() < deadline) if ((await poll()) === null) break;
      assert.equal(read, ["h1", "h3", "l1"], "its live share once subtask 0 answered");
      assert.equal((await ahead.pollNext())?.values, ["l0"]);
    } finally {
      await ahead.close();
      await behind.close();
    }
  } finally {
    await nc.close();
  }
});

test.run();
