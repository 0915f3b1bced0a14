// Backlog-aware execution (FLIP-325/327/309): sort during backlog gives the same results as streaming,
// the subtask goes backlog → sorting → streaming, and checkpoints follow checkpointIntervalDuringBacklogMs.
import { suite } from "uvu";
import * as assert from "uvu/assert";
import * as t from "io-ts";
import { Sources, StreamEnvironment, TumblingEventTimeWindows, valueState, WatermarkStrategy, type JobOptions, type SourceDef } from "../mod.ts";
import { withServer } from "./helpers/nats-server.ts";
import { mkdtempSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

const backlog = suite("backlog");
const nats = withServer(backlog);

interface Payment { account: string; ts: number; amount: number }

function payments(n: number, seed: number, fromTs: number): Payment[] {
  let s = seed;
  const rand = () => ((s = (s * 1103515245 + 12345) & 0x7fffffff) / 0x7fffffff);
  return Array.from({ length: n }, (_, i) => ({
    account: `acct-${Math.floor(rand() * 40)}`,
    // Mostly ordered, some disorder within the 300 ms bound, and a few records later than it.
    ts: fromTs + i * 10 - (rand() < 0.2 ? Math.floor(rand() * 300) : 0) - (i % 53 === 0 ? 2000 : 0),
    amount: Math.floor(rand() * 100) - 30,
  }));
}

const balance = valueState("balance", t.number);

/**
 * The mixed mode of FLIP-327 (sort the backlog, then stream): these jobs' sources are all bounded, which
 * "automatic" would run as batch; a job that takes checkpoints stays in the mixed mode (failing, as without
 * checkpoints, instead of restarting).
 */
const MIXED = { checkpointIntervalMs: 600_000, checkpointIntervalDuringBacklogMs: 0, restartStrategy: { type: "none" } } as const;

/** Hybrid source (history as backlog, then live), running balances per account, 1 s window totals. */
async function runJob(name: string, history: Payment[], live: Payment[], options: Partial<JobOptions>, onStatus?: (s: unknown) => void) {
  const inspected: string[] = [];
  const env = StreamEnvironment.create({
    name, nats: nats.url, parallelism: 2, stateBackend: "heap",
    inspect: (e: unknown) => {
      const ev = e as { type: string; actorRef?: { id?: string }; snapshot?: { value?: unknown; context?: { name?: string; index?: number } } };
      if (ev.type === "@xstate.snapshot" && ev.snapshot?.context?.name?.startsWith("balances")) {
        const v = ev.snapshot.value as { running?: { mode?: string } } | string;
        const state = typeof v === "string" ? v : v.running ? `running.${v.running.mode}` : JSON.stringify(v);
        const line = `${ev.snapshot.context.index}:${state}`;
        if (inspected[inspected.length - 1] !== line) inspected.push(line);
      }
    },
    ...options,
  });
  try {
    const events = env.fromSource(Sources.hybrid(Sources.array(history) as SourceDef<Payment>, Sources.array(live) as SourceDef<Payment>), { name: "payments", parallelism: 1 })
      .assignTimestampsAndWatermarks(WatermarkStrategy.boundedOutOfOrderness<Payment>(300, (p) => p.ts).withWatermarkPerRecord(), { parallelism: 1 });
    const balances = events.keyBy((p) => p.account).process<string>({
      async processElement(p, ctx) {
        const b = ((await ctx.state(balance).value()) ?? 0) + p.amount;
        await ctx.state(balance).update(b);
        ctx.collect(`balance ${p.account} ${b}`);
      },
    }, { name: "balances" });
    const totals = events.keyBy((p) => p.account).window(TumblingEventTimeWindows.of(1000)).reduce((a, b) => ({ ...a, amount: a.amount + b.amount }), { name: "totals" })
      .map((p) => `total ${p.account}@${Math.floor(p.ts / 1000)} ${p.amount}`);
    const client = await balances.union(totals).executeAndCollect();
    onStatus?.(client);
    return { out: client, inspected };
  } finally {
    await env.close();
  }
}

backlog("sorting the backlog gives the same results as streaming it (randomized input)", async () => {
  for (const seed of [1, 2, 3]) {
    const history = payments(3000, seed, 100_000);
    const live = payments(500, seed + 100, 130_000);
    const sorted = await runJob(`sorted${seed}`, history, live, MIXED);
    const streamed = await runJob(`streamed${seed}`, history, live, { mode: "streaming" });
    assert.is(sorted.out.length, streamed.out.length, `seed ${seed}: same number of outputs`);
    assert.equal([...sorted.out].sort(), [...streamed.out].sort(), `seed ${seed}: same outputs`);
    // Per key, balances come in the same order (they are running sums).
    const perKey = (out: string[]) => out.filter((s) => s.startsWith("balance acct-7 "));
    assert.equal(perKey(sorted.out), perKey(streamed.out));
    assert.ok(sorted.inspected.some((s) => s.endsWith("running.sorting")), "the sorted run went through sorting");
    assert.not.ok(streamed.inspected.some((s) => s.endsWith("running.sorting")), "the streamed run never sorted");
  }
});

backlog("a keyed reduce over a sorted backlog emits each key's backlog total once, then live updates (KV and heap, with spills)", async () => {
  const history = payments(4000, 5, 0);
  const live = payments(300, 6, 50_000);
  const run = async (name: string, options: Partial<JobOptions>) => {
    const env = StreamEnvironment.create({ name, nats: nats.url, parallelism: 2, ...options });
    try {
      const sums = env.fromSource(Sources.hybrid(Sources.array(history) as SourceDef<Payment>, Sources.array(live) as SourceDef<Payment>), { parallelism: 1 })
        .keyBy((p) => p.account)
        .reduce((a, b) => ({ ...b, amount: a.amount + b.amount }), { name: "sums" });
      const out = await sums.executeAndCollect();
      return { out };
    } finally {
      await env.close();
    }
  };
  const lastPerKey = (out: Payment[]) => Object.fromEntries(out.map((p) => [p.account, p.amount]));
  const backlogTotals = new Map<string, number>();
  for (const p of history) backlogTotals.set(p.account, (backlogTotals.get(p.account) ?? 0) + p.amount);
  for (const stateBackend of ["jetstream-kv", "heap"] as const) {
    const streamed = await run(`reduce-streamed-${stateBackend}`, { stateBackend, mode: "streaming" });
    const sorted = await run(`reduce-sorted-${stateBackend}`, { stateBackend, ...MIXED, backlogSort: { memoryBytes: 30_000 } });
    assert.is(streamed.out.length, history.length + live.length, "streaming emits every running value");
    assert.is(sorted.out.length, backlogTotals.size + live.length, `${stateBackend}: one result per key for the backlog, then one per live record`);
    assert.equal(lastPerKey(sorted.out), lastPerKey(streamed.out), `${stateBackend}: same final values`);
    const firstPerKey = new Map<string, number>();
    for (const p of sorted.out) if (!firstPerKey.has(p.account)) firstPerKey.set(p.account, p.amount);
    assert.equal(firstPerKey, backlogTotals, `${stateBackend}: each key's first result is its total over the backlog`);
  }
});

backlog("a reduce that is order-sensitive and not associative: the sorted backlog (folded as it arrives, then spilled) gives streaming's values", async () => {
  const history = payments(3000, 7, 0);
  const live = payments(200, 8, 40_000);
  // Each step depends on the order: (a * 31 + b) mod p; combining two partial results would differ.
  const step = (a: number, b: number) => (a * 31 + b + 1_000_003) % 1_000_003;
  const run = async (name: string, options: Partial<JobOptions>) => {
    const env = StreamEnvironment.create({ name, nats: nats.url, parallelism: 2, ...options });
    try {
      return await env.fromSource(Sources.hybrid(Sources.array(history) as SourceDef<Payment>, Sources.array(live) as SourceDef<Payment>), { parallelism: 1 })
        .keyBy((p) => p.account)
        .reduce((a, b) => ({ ...b, amount: step(a.amount, b.amount) }), { name: "trail" })
        .executeAndCollect();
    } finally {
      await env.close();
    }
  };
  const expected = new Map<string, number>();
  for (const p of history) expected.set(p.account, expected.has(p.account) ? step(expected.get(p.account)!, p.amount) : p.amount);
  for (const [stateBackend, memoryBytes] of [["jetstream-kv", 1 << 26], ["jetstream-kv", 20_000], ["heap", 20_000]] as const) {
    const streamed = await run(`trail-streamed-${stateBackend}-${memoryBytes}`, { stateBackend, mode: "streaming" });
    const sorted = await run(`trail-sorted-${stateBackend}-${memoryBytes}`, { stateBackend, ...MIXED, backlogSort: { memoryBytes } });
    const last = (out: Payment[]) => Object.fromEntries(out.map((p) => [p.account, p.amount]));
    assert.equal(last(sorted), last(streamed), `${stateBackend}, sort budget ${memoryBytes}: same final values`);
    const first = new Map<string, number>();
    for (const p of sorted) if (!first.has(p.account)) first.set(p.account, p.amount);
    assert.equal(first, expected, `${stateBackend}, sort budget ${memoryBytes}: each key's backlog result is its records folded in arrival order`);
  }
});

backlog("a sorted backlog over restored state: keys that already have state continue from it, new keys start empty", async () => {
  interface Count { k: string; n: number }
  for (const stateBackend of ["jetstream-kv", "heap"] as const) {
    const name = `restored-${stateBackend}`;
    const sum = (records: Count[], sorted: boolean, uid: string, live: Count[] = []) => {
      // The second job reads another source (uid "second"): the first one's offsets are dropped.
      const env = StreamEnvironment.create({ name, nats: nats.url, parallelism: 2, stateBackend, checkpointIntervalMs: 100, checkpointIntervalDuringBacklogMs: sorted ? 0 : 100, allowNonRestoredState: true }, { log: () => {} });
      const source = sorted ? Sources.hybrid(Sources.array(records) as SourceDef<Count>, Sources.array(live) as SourceDef<Count>) : Sources.array(records) as SourceDef<Count>;
      return env.fromSource(source, { uid }).keyBy((c) => c.k).reduce((a, b) => ({ k: a.k, n: a.n + b.n }), { uid: "sum" })
        .executeAndCollect().finally(() => env.close());
    };
    // First job: keys k0..k9, 20 each; it finishes with a final checkpoint the second job restores.
    await sum(Array.from({ length: 200 }, (_, i) => ({ k: `k${i % 10}`, n: 1 })), false, "first");
    // Second job: a backlog of k0..k19, 20 each, sorted (k10..k19 have no state: folded as they arrive).
    const out = await sum(Array.from({ length: 400 }, (_, i) => ({ k: `k${i % 20}`, n: 1 })), true, "second", [{ k: "k0", n: 100 }]);
    const last = new Map(out.map((c) => [c.k, c.n]));
    for (let i = 0; i < 20; i++) assert.is(last.get(`k${i}`), (i < 10 ? 40 : 20) + (i === 0 ? 100 : 0), `${stateBackend}: k${i}`);
  }
});

backlog("a reduce that throws on a backlog record fails the job with the operator and the key, folded or not", async () => {
  for (const memoryBytes of [1 << 26, 2_000]) {
    const env = StreamEnvironment.create({ name: `throwing-${memoryBytes}`, nats: nats.url, parallelism: 2, stateBackend: "jetstream-kv", ...MIXED, backlogSort: { memoryBytes } }, { log: () => {} });
    const history = payments(500, 11, 0);
    const bad = history[400]!;
    try {
      await env.fromSource(Sources.hybrid(Sources.array(history) as SourceDef<Payment>, Sources.array(payments(5, 12, 9000)) as SourceDef<Payment>), { parallelism: 1 })
        .keyBy((p) => p.account)
        .reduce((a, b) => { if (b.ts === bad.ts && b.amount === bad.amount && b.account === bad.account) throw new Error("no such payment"); return { ...b, amount: a.amount + b.amount }; }, { name: "sums" })
        .executeAndCollect();
      assert.unreachable("the job should fail");
    } catch (err) {
      assert.match((err as Error).message, new RegExp(`operator "sums" \\(subtask \\d\\) failed for key "${bad.account}": no such payment`), `budget ${memoryBytes}: ${(err as Error).message}`);
    } finally {
      await env.close();
    }
  }
});

backlog("a process function that rejects or throws on a backlog record fails the job with the operator and the key, sorted or in batch mode", async () => {
  const history = payments(300, 13, 0);
  const bad = history[200]!;
  const isBad = (p: Payment) => p.ts === bad.ts && p.amount === bad.amount && p.account === bad.account;
  for (const mode of ["sorted", "batch"] as const) {
    for (const how of ["rejects", "throws"] as const) {
      const options: Partial<JobOptions> = mode === "batch" ? { mode: "batch" } : MIXED;
      const env = StreamEnvironment.create({ name: `rejecting-${mode}-${how}`, nats: nats.url, parallelism: 2, stateBackend: "heap", ...options }, { log: () => {} });
      const live = mode === "batch" ? [] : payments(5, 14, 9000);
      try {
        await env.fromSource(Sources.hybrid(Sources.array(history) as SourceDef<Payment>, Sources.array(live) as SourceDef<Payment>), { parallelism: 1 })
          .keyBy((p) => p.account)
          .process<number>(how === "rejects"
            ? { async processElement(p, c) { const b = ((await c.state(balance).value()) ?? 0) + p.amount; if (isBad(p)) throw new Error("no such payment"); await c.state(balance).update(b); } }
            : { processElement(p) { if (isBad(p)) throw new Error("no such payment"); } }, { name: "balances" })
          .executeAndCollect();
        assert.unreachable("the job should fail");
      } catch (err) {
        assert.match((err as Error).message, new RegExp(`operator "balances" \\(subtask \\d\\) failed for key "${bad.account}": no such payment`), `${mode}, ${how}: ${(err as Error).message}`);
      } finally {
        await env.close();
      }
    }
  }
});

backlog("the keyed subtask goes backlog → sorting → streaming, in that order", async () => {
  const { inspected } = await runJob("transitions", payments(1000, 9, 0), payments(100, 10, 20_000), MIXED);
  for (const i of [0, 1]) {
    const mine = inspected.filter((s) => s.startsWith(`${i}:running.`)).map((s) => s.split(":")[1]);
    const firstOf = (state: string) => mine.indexOf(state);
    assert.ok(firstOf("running.backlog") >= 0, `subtask ${i} states: ${mine.join(" → ")}`);
    assert.ok(firstOf("running.backlog") < firstOf("running.sorting"), `subtask ${i}: ${mine.join(" → ")}`);
    assert.ok(firstOf("running.sorting") < mine.lastIndexOf("running.streaming"), `subtask ${i}: ${mine.join(" → ")}`);
  }
});

backlog("a backlog larger than the sort budget fails with the operator and the budget", async () => {
  const env = StreamEnvironment.create({ name: "toobig", nats: nats.url, parallelism: 1, stateBackend: "heap", ...MIXED, backlogSort: { memoryBytes: 20_000, diskBytes: 50_000 } });
  try {
    await env.fromSource(Sources.hybrid(Sources.array(payments(5000, 4, 0)) as SourceDef<Payment>, Sources.array([] as Payment[]) as SourceDef<Payment>))
      .keyBy((p) => p.account)
      .process({ processElement() {} }, { name: "ledger" })
      .executeAndCollect();
    assert.unreachable("should fail");
  } catch (e) {
    assert.match((e as Error).message, /operator "ledger": the backlog does not fit the sort budget \(memory 0 MB, disk 0 MB/);
  } finally {
    await env.close();
  }
});

backlog("a job cancelled while its backlog spills leaves no spilled runs behind", async () => {
  const directory = mkdtempSync(join(tmpdir(), "weir-backlog-cancel-"));
  const env = StreamEnvironment.create({ name: "cancel-spilling", nats: nats.url, parallelism: 2, stateBackend: "heap", ...MIXED, backlogSort: { memoryBytes: 20_000, directory } }, { log: () => {} });
  try {
    // A backlog that does not end before the cancel.
    const history = Sources.generator({ count: 1e9, make: (i): Payment => ({ account: `acct-${i % 500}`, ts: i, amount: 1 }) }) as SourceDef<Payment>;
    env.fromSource(Sources.hybrid(history, Sources.array([] as Payment[]) as SourceDef<Payment>), { parallelism: 1 })
      .keyBy((p) => p.account)
      .process({ processElement() {} }, { name: "ledger" })
      .sinkTo({ kind: "none", createWriter: async () => ({ write: () => {}, flush: async () => {}, close: async () => {} }) });
    const client = await env.executeAsync();
    const runs = () => readdirSync(directory).flatMap((d) => readdirSync(join(directory, d)));
    const deadline = Date.now() + 60_000;
    while (runs().length < 4 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    assert.ok(runs().length >= 4, `runs spilled before the cancel: ${runs().length}`);
    await client.cancel();
    assert.equal(readdirSync(directory), [], "the sort directory is empty after the cancel");
  } finally {
    await env.close();
    rmSync(directory, { recursive: true, force: true });
  }
});

backlog("no checkpoints while a source is in backlog at interval 0; checkpoints in both phases otherwise", async () => {
  const runWithCheckpoints = async (name: string, duringBacklog: number) => {
    const env = StreamEnvironment.create({ name, nats: nats.url, parallelism: 1, stateBackend: "heap", checkpointIntervalMs: 50, checkpointIntervalDuringBacklogMs: duringBacklog });
    const phases: Array<{ backlog: boolean; completed: number }> = [];
    try {
      // A slow backlog (a rate-limited generator) and then a slow live part, so each phase lasts ~0.6 s.
      const history = Sources.generator({ count: 300, ratePerSec: 500, make: (i) => ({ account: `a${i % 5}`, ts: i, amount: 1 }) });
      const live = Sources.generator({ count: 300, ratePerSec: 500, make: (i) => ({ account: `a${i % 5}`, ts: 1000 + i, amount: 1 }) });
      env.fromSource(Sources.hybrid(history, live)).keyBy((p) => p.account).process({ processElement() {} }, { name: "sink-ish" })
        .sinkTo({ kind: "none", createWriter: async () => ({ write: () => {}, flush: async () => {}, close: async () => {} }) });
      const client = await env.executeAsync();
      const poll = setInterval(() => {
        const s = client.status();
        phases.push({ backlog: s.subtasks.some((x) => x.isBacklog), completed: s.checkpoints?.completed ?? 0 });
      }, 20);
      await client.result();
      clearInterval(poll);
    } finally {
      await env.close();
    }
    const during = phases.filter((p) => p.backlog);
    const after = phases.filter((p) => !p.backlog && phases.indexOf(p) > phases.findIndex((x) => x.backlog));
    const inBacklog = during.length ? during[during.length - 1]!.completed - during[0]!.completed : 0;
    const live = after.length ? after[after.length - 1]!.completed - after[0]!.completed : 0;
    return { inBacklog, live, phases: during.length };
  };
  const none = await runWithCheckpoints("cp-backlog-0", 0);
  assert.ok(none.phases > 5, "the backlog phase was observed");
  assert.is(none.inBacklog, 0, "no checkpoint completed during backlog");
  assert.ok(none.live >= 2, `checkpoints in the live phase (${none.live})`);
  const both = await runWithCheckpoints("cp-backlog-100", 100);
  assert.ok(both.inBacklog >= 2, `checkpoints during backlog (${both.inBacklog})`);
  assert.ok(both.live >= 2, `checkpoints in the live phase (${both.live})`);
});

backlog("a source subtask reading its backlog says so in weir status (its own attributes, not only downstream's)", async () => {
  const env = StreamEnvironment.create({ name: "source-backlog-status", nats: nats.url, parallelism: 1, stateBackend: "heap" });
  const seen: boolean[] = [];
  try {
    const history = Sources.generator({ count: 300, ratePerSec: 500, make: (i) => ({ account: `a${i % 5}` }) });
    const live = Sources.generator({ count: 100, ratePerSec: 500, make: (i) => ({ account: `a${i % 5}` }) });
    env.fromSource(Sources.hybrid(history, live), { name: "payments" }).keyBy((p) => p.account).process({ processElement() {} })
      .sinkTo({ kind: "none", createWriter: async () => ({ write: () => {}, flush: async () => {}, close: async () => {} }) });
    const client = await env.executeAsync();
    const poll = setInterval(() => {
      const source = client.status().subtasks.find((x) => x.id.startsWith("payments"));
      if (source) seen.push(source.isBacklog);
    }, 20);
    try { await client.result(); } finally { clearInterval(poll); }
  } finally {
    await env.close();
  }
  assert.ok(seen.includes(true), `the source subtask reported backlog (${seen.length} samples)`);
  assert.is(seen[seen.length - 1], false, "and live once the history was read");
});

backlog("a live source that reports backlog again is ignored, and says so once (the demo logged it at every poll)", async () => {
  const lines: string[] = [];
  const env = StreamEnvironment.create({ name: "backlog-again", nats: nats.url, parallelism: 1, stateBackend: "heap" }, { log: (l) => lines.push(l) });
  // Backlog, then live, then backlog and live in turn at every poll: what a source whose lag hovers at its threshold reports.
  let polls = 0;
  const flapping: SourceDef<number> = {
    kind: "flapping", bounded: true,
    createReader: async () => ({
      takeAttributes: () => ({ isBacklog: polls === 0 || (polls > 1 && polls % 2 === 0) }),
      pollNext: async () => (polls++ < 50 ? { values: [polls] } : null),
      close: async () => {},
    }),
  };
  const out: number[] = [];
  try {
    env.fromSource(flapping, { name: "flapping" }).map((n) => n)
      .sinkTo({ kind: "list", createWriter: async () => ({ write: (v: number) => { out.push(v); }, flush: async () => {}, close: async () => {} }) });
    await env.execute();
  } finally {
    await env.close();
  }
  assert.is(out.length, 50, "every record went through");
  assert.is(lines.filter((l) => /reported backlog again after going live/.test(l)).length, 1, lines.filter((l) => /backlog again/.test(l)).slice(0, 3).join("\n"));
});

backlog.run();
