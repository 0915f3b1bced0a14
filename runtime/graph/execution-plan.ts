// What one execution of an environment runs (Flink's semantics): the sinks defined since the previous
// execution, the nodes they need, and for each cached stream (FLIP-205) either its computation plus a
// sink writing the cache (first time), or a source reading the cache instead of everything upstream of it.

import type { SinkDef, SourceDef } from "../contracts/connectors.ts";
import { ErrorCode, WeirError } from "../core/errors.ts";
import type { CacheNode, GraphView, SinkNode, SourceNode, StreamNode, UnionNode } from "./stream-graph.ts";

export interface CachePlanning {
  /** Sinks with an id below this ran in an earlier execution. */
  readonly firstSink: number;
  /** Cached streams already written: their parallelism (the reader's is the writer's). */
  readonly produced: ReadonlyMap<number, { readonly parallelism: number }>;
  readonly writer: (cache: CacheNode) => SinkDef<unknown>;
  readonly reader: (cache: CacheNode) => SourceDef<unknown>;
}

export interface ExecutionPlan {
  readonly graph: GraphView;
  /** Cached streams this execution writes, each with the id of its writing sink. */
  readonly writes: ReadonlyArray<{ readonly cache: CacheNode; readonly sink: number }>;
}

export function planExecution(graph: GraphView, planning: CachePlanning): ExecutionPlan {
  const nodes: StreamNode[] = graph.nodes.slice();
  const sinks = nodes.filter((n): n is SinkNode => n.kind === "sink" && n.id >= planning.firstSink);
  if (sinks.length === 0) {
    throw new WeirError(ErrorCode.InvalidGraph, nodes.some((n) => n.kind === "sink")
      ? "nothing new to run: every sink ran in an earlier execution of this environment; add a sinkTo(...) or executeAndCollect()"
      : "the job has no sink: end a stream with sinkTo(...) or executeAndCollect()");
  }
  // Read from the cache: the cache node becomes a source, and what is only upstream of it is not run.
  for (const n of graph.nodes) {
    if (n.kind !== "cache") continue;
    const produced = planning.produced.get(n.id);
    if (!produced) continue;
    const source: SourceNode = { kind: "source", id: n.id, name: n.name, uid: n.uid, parallelism: produced.parallelism, source: planning.reader(n) };
    nodes[n.id] = source;
  }
  const needed = new Set<number>();
  const visit = (id: number): void => {
    if (needed.has(id)) return;
    needed.add(id);
    const n = nodes[id]!;
    switch (n.kind) {
      case "source": return;
      case "operator": n.inputs.forEach((refs) => refs.forEach(visit)); return;
      case "union": n.inputs.forEach(visit); return;
      case "sink": case "partition": case "side": case "cache": visit(n.input); return;
    }
  };
  sinks.forEach((s) => visit(s.id));
  const writes: Array<{ cache: CacheNode; sink: number }> = [];
  for (const n of graph.nodes) {
    if (!needed.has(n.id)) {
      const placeholder: UnionNode = { kind: "union", id: n.id, inputs: [] }; // not physical: not run
      nodes[n.id] = placeholder;
    } else if (nodes[n.id]!.kind === "cache") {
      // Computed in this execution: also written to the cache, by a sink of its own.
      const cache = n as CacheNode;
      const sink: SinkNode = { kind: "sink", id: nodes.length, name: `${cache.name} (write)`, uid: `${cache.uid}-write`, input: cache.id, sink: planning.writer(cache) };
      nodes.push(sink);
      writes.push({ cache, sink: sink.id });
    }
  }
  return { graph: { nodes, node: (id) => { const n = nodes[id]; if (!n) throw new WeirError(ErrorCode.InvalidGraph, `no stream node ${id}`); return n; } }, writes };
}
