import { suite } from "uvu";
import * as assert from "uvu/assert";
import { describeJobGraph, Sinks, Sources, StreamEnvironment, WeirError, type JobGraph } from "../mod.ts";
import { planExecution } from "../runtime/graph/execution-plan.ts";
import { buildJobGraph } from "../runtime/graph/job-graph.ts";
import type { CacheNode } from "../runtime/graph/stream-graph.ts";

const graph = suite("job graph");

function pipeline(p = 2): StreamEnvironment {
  const env = StreamEnvironment.create({ name: "g", parallelism: p });
  env.fromSource(Sources.generator({ count: 10, make: (i) => i }), { name: "numbers" })
    .map((x) => x * 2, { name: "double" })
    .filter((x) => x % 3 !== 0, { name: "not3" })
    .keyBy((x) => x % 5)
    .reduce((a, b) => a + b, { name: "sum" })
    .map((x) => `${x}`, { name: "show" })
    .sinkTo(Sinks.print(), { name: "out" });
  return env;
}

const chains = (g: JobGraph) => g.vertices.map((v) => `${v.name}|${v.parallelism}`);

graph("forward edges of equal parallelism chain; keyBy starts a new chain", () => {
  const g = pipeline().jobGraph();
  assert.equal(chains(g), ["numbers -> double -> not3|2", "sum -> show -> out|2"]);
  assert.equal(g.edges.map((e) => e.partitioning.type), ["hash"]);
});

graph("a different parallelism breaks the chain with a rebalance edge", () => {
  const env = StreamEnvironment.create({ name: "g", parallelism: 3 });
  env.fromSource(Sources.array([1, 2, 3]), { name: "arr" }).map((x) => x, { name: "m" }).sinkTo(Sinks.print(), { name: "s", parallelism: 1 });
  const g = env.jobGraph();
  assert.equal(chains(g), ["arr|1", "m|3", "s|1"], "array sources default to parallelism 1");
  assert.equal(g.edges.map((e) => e.partitioning.type), ["rebalance", "rebalance"]);
});

graph("chaining can be turned off", () => {
  const env = StreamEnvironment.create({ name: "g", parallelism: 2 }, { chaining: false });
  env.fromSource(Sources.generator({ count: 1, make: (i) => i }), { name: "src" }).map((x) => x, { name: "m" }).sinkTo(Sinks.print(), { name: "s" });
  assert.equal(chains(env.jobGraph()), ["src|2", "m|2", "s|2"]);
});

graph("union fans several streams into one operator (no chaining into it)", () => {
  const env = StreamEnvironment.create({ name: "g", parallelism: 2 });
  const a = env.fromSource(Sources.generator({ count: 1, make: (i) => i }), { name: "a" });
  const b = env.fromSource(Sources.generator({ count: 1, make: (i) => i }), { name: "b" });
  a.union(b).map((x) => x, { name: "m" }).sinkTo(Sinks.print(), { name: "s" });
  const g = env.jobGraph();
  assert.equal(chains(g), ["a|2", "b|2", "m -> s|2"]);
  assert.equal(g.edges.map((e) => `${e.fromVertex}->${e.toVertex}:${e.partitioning.type}`), ["0->2:forward", "1->2:forward"]);
});

graph("connect gives a two-input operator with inputs 0 and 1", () => {
  const env = StreamEnvironment.create({ name: "g", parallelism: 1 });
  const a = env.fromSource(Sources.array(["x"]), { name: "a" });
  const b = env.fromSource(Sources.array([1]), { name: "b" });
  a.connect(b).map((s) => s, (n) => String(n), { name: "co" }).sinkTo(Sinks.print(), { name: "s" });
  const g = env.jobGraph();
  assert.equal(chains(g), ["a|1", "b|1", "co -> s|1"]);
  assert.equal(g.vertices[2]!.inputs.map((e) => e.inputIndex), [0, 1]);
});

graph("the same job module builds the same graph (uids, names, edges)", () => {
  const one = pipeline();
  const two = pipeline();
  assert.is(describeJobGraph(one.jobGraph()), describeJobGraph(two.jobGraph()));
  assert.equal(one.jobGraph().vertices.map((v) => v.uid), two.jobGraph().vertices.map((v) => v.uid));
  // A named operator's uid is its name (subtask ids "numbers#0", "sum#1"); a second of the same name, or an unnamed one, `<name>-<position>`.
  assert.equal(one.jobGraph().vertices.map((v) => v.uid), ["numbers", "sum"]);
  const env = StreamEnvironment.create({ name: "g", parallelism: 1 }, { chaining: false });
  env.fromSource(Sources.array([1]), { name: "x" }).map((v) => v, { name: "x" }).map((v) => v).sinkTo(Sinks.print(), { uid: "out" });
  assert.equal(env.jobGraph().vertices.map((v) => v.uid), ["x", "x-1", "map-2", "out"]);
});

graph("a cached stream: first written by a sink of its own, then read by a source that replaces everything upstream", () => {
  const env = StreamEnvironment.create({ name: "g", parallelism: 2, mode: "batch" });
  const cached = env.fromSource(Sources.array([1, 2, 3]), { name: "arr" }).map((x) => x * 2, { name: "expensive" }).cache();
  cached.filter((x) => x > 2, { name: "big" }).sinkTo(Sinks.print(), { name: "out" });
  const discard = { kind: "w", createWriter: async () => ({ write: () => {}, flush: async () => {}, close: async () => {} }) };
  const reader = { kind: "r", bounded: true, createReader: async () => ({ pollNext: async () => null, close: async () => {} }) };
  const plan = (produced: Map<number, { parallelism: number }>) => {
    const p = planExecution(env.graph, { firstSink: 0, produced, writer: () => discard, reader: () => reader });
    return { p, g: buildJobGraph(p.graph, { parallelism: 2, maxParallelism: 128 }) };
  };
  const first = plan(new Map());
  assert.equal(chains(first.g), ["arr|1", "expensive -> big -> out -> Cache: expensive (write)|2"]);
  assert.is(first.p.writes.length, 1);
  const cacheId = env.graph.nodes.find((n): n is CacheNode => n.kind === "cache")!.id;
  const later = plan(new Map([[cacheId, { parallelism: 3 }]]));
  assert.equal(chains(later.g), ["Cache: expensive|3", "big -> out|2"], "the source and the map are not run; the reader has the writer's parallelism");
  assert.is(later.p.writes.length, 0);
});

graph("mistakes give one clear line", () => {
  const noSink = StreamEnvironment.create({ name: "g" });
  noSink.fromSource(Sources.array([1])).map((x) => x);
  assert.throws(() => noSink.jobGraph(), (e: Error) => e instanceof WeirError && /no sink/.test(e.message));

  const dup = StreamEnvironment.create({ name: "g" });
  dup.fromSource(Sources.array([1]), { uid: "same" });
  assert.throws(() => dup.fromSource(Sources.array([1]), { uid: "same" }), /uid "same" is used twice/);

  assert.throws(() => StreamEnvironment.create({ name: "bad name" }), /job name "bad name" may only contain/);
  assert.throws(() => StreamEnvironment.create({ name: "ok", parallelism: 0 }), /^job options: parallelism: expected \(PositiveInt \| "auto"\), got 0$/, "a union names all it accepts, not its first member");
  assert.throws(() => StreamEnvironment.create({ name: "ok", mode: "fast" as never }), /^job options: mode: expected "streaming" \| "batch" \| "automatic", got "fast"$/);
  assert.throws(() => StreamEnvironment.create({ name: "ok", asyncState: { bufferSize: -1 } } as never), /asyncState\.bufferSize/);
  assert.throws(() => StreamEnvironment.create({ name: "ok", parallelism: 200 }), /exceeds maxParallelism 128/);
  assert.throws(() => StreamEnvironment.create({ name: "ok", checkpointIntervalDuringBacklogMs: 1000 }), /^job options: checkpointIntervalDuringBacklogMs 1000 needs checkpointIntervalMs/, "never ignored, also in mode automatic");
  assert.ok(StreamEnvironment.create({ name: "ok", checkpointIntervalMs: 500, checkpointIntervalDuringBacklogMs: 1000 }));
  assert.throws(() => StreamEnvironment.create({ name: "ok", checkpointIntervalWhileIdleMs: 5000 }), /^job options: checkpointIntervalWhileIdleMs 5000 needs checkpointIntervalMs/);
  assert.throws(() => StreamEnvironment.create({ name: "ok", checkpointIntervalMs: 500, checkpointIntervalWhileIdleMs: 100 }), /^job options: checkpointIntervalWhileIdleMs 100 is shorter than checkpointIntervalMs 500/);
  assert.throws(() => StreamEnvironment.create({ name: "ok", checkpointIntervalMs: 500, checkpointIntervalWhileIdleMs: -1 }), /checkpointIntervalWhileIdleMs/);
  assert.ok(StreamEnvironment.create({ name: "ok", checkpointIntervalMs: 500, checkpointIntervalWhileIdleMs: 0 }));
  assert.ok(StreamEnvironment.create({ name: "ok", checkpointIntervalMs: 500, checkpointIntervalWhileIdleMs: 500 }));
  const wide = StreamEnvironment.create({ name: "wide", maxParallelism: 8 });
  wide.fromSource(Sources.array([1])).map((x) => x, { name: "wide map", parallelism: 50 }).sinkTo(Sinks.print());
  assert.throws(() => wide.jobGraph(), /operator "wide map": parallelism 50 exceeds maxParallelism 8/, "a non-keyed operator too, as in Flink");
});

graph.run();
