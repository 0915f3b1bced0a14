// From the logical StreamGraph to the physical JobGraph: resolve virtual nodes (union, keyBy, side
// outputs) into edges, settle every node's parallelism, and chain forward edges between nodes of equal
// parallelism into one vertex (one subtask runs the whole chain with plain function calls).

import { ErrorCode, WeirError } from "../core/errors.ts";
import { isPhysical, type GraphView, type Partitioning, type PhysicalNode } from "./stream-graph.ts";

export interface ResolvedEdge {
  readonly from: number; // physical node id
  readonly to: number;
  readonly inputIndex: number;
  readonly partitioning: Partitioning;
  readonly explicit: boolean;
  /** Side-output tag; undefined for the main output. */
  readonly tag?: string;
}

/** A network edge between two vertices: one channel per (producer subtask, consumer subtask) pair in use. */
export interface JobEdge extends ResolvedEdge {
  readonly id: number;
  readonly fromVertex: number;
  readonly toVertex: number;
}

export interface JobVertex {
  readonly id: number;
  /** The chain head's uid. */
  readonly uid: string;
  readonly name: string;
  readonly parallelism: number;
  /** Physical nodes of the chain in topological order; nodes[0] is the head. */
  readonly nodes: readonly PhysicalNode[];
  /** Edges inside the chain (function calls). */
  readonly chained: readonly ResolvedEdge[];
  readonly inputs: readonly JobEdge[];
  readonly outputs: readonly JobEdge[];
}

export interface JobGraph {
  readonly vertices: readonly JobVertex[];
  readonly edges: readonly JobEdge[];
  readonly maxParallelism: number;
}

export interface BuildOptions {
  readonly parallelism: number;
  readonly maxParallelism: number;
  /** Turn chaining off (every operator its own subtask): useful to measure chaining. */
  readonly chaining?: boolean;
}

export function buildJobGraph(graph: GraphView, options: BuildOptions): JobGraph {
  const physical = graph.nodes.filter(isPhysical);
  if (!physical.some((n) => n.kind === "source")) throw new WeirError(ErrorCode.InvalidGraph, "the job has no source");
  if (!physical.some((n) => n.kind === "sink")) {
    throw new WeirError(ErrorCode.InvalidGraph, "the job has no sink: end a stream with sinkTo(...) or executeAndCollect()");
  }

  // 1. Edges between physical nodes, through virtual nodes.
  const edges: ResolvedEdge[] = [];
  const resolve = (ref: number, to: number, inputIndex: number, partitioning: Partitioning | undefined, tag: string | undefined): void => {
    const n = graph.node(ref);
    switch (n.kind) {
      case "union": for (const i of n.inputs) resolve(i, to, inputIndex, partitioning, tag); return;
      case "partition": resolve(n.input, to, inputIndex, partitioning ?? n.partitioning, tag); return;
      case "side": resolve(n.input, to, inputIndex, partitioning, tag ?? n.tag); return;
      case "cache": resolve(n.input, to, inputIndex, partitioning, tag); return; // not planned: the input itself
      default:
        edges.push({ from: n.id, to, inputIndex, partitioning: partitioning ?? { type: "forward" }, explicit: partitioning !== undefined, ...(tag !== undefined ? { tag } : {}) });
    }
  };
  for (const n of physical) {
    if (n.kind === "operator") n.inputs.forEach((refs, i) => refs.forEach((r) => resolve(r, n.id, i, undefined, undefined)));
    if (n.kind === "sink") resolve(n.input, n.id, 0, undefined, undefined);
  }

  // 2. Parallelism.
  const parallelism = new Map<number, number>();
  for (const n of physical) {
    const p = n.parallelism
      ?? (n.kind === "source" ? n.source.defaultParallelism : n.kind === "sink" ? n.sink.defaultParallelism : undefined)
      ?? options.parallelism;
    // As Flink: maxParallelism bounds every operator (keyed ones have that many key groups to share).
    if (p > options.maxParallelism) {
      throw new WeirError(ErrorCode.InvalidGraph, `operator "${n.name}": parallelism ${p} exceeds maxParallelism ${options.maxParallelism}`);
    }
    parallelism.set(n.id, p);
  }

  // 3. Implicit partitioning: forward between equal parallelism, else rebalance.
  const settled = edges.map((e): ResolvedEdge => {
    const same = parallelism.get(e.from) === parallelism.get(e.to);
    if (e.explicit && e.partitioning.type === "forward" && !same) {
      throw new WeirError(ErrorCode.InvalidGraph, `forward edge from "${graph.node(e.from).id}" needs equal parallelism on both sides`);
    }
    if (!e.explicit && !same) return { ...e, partitioning: { type: "rebalance" } };
    return e;
  });

  // 4. Chaining: forward, same parallelism, the target's only input, target chainable.
  const inputCount = new Map<number, number>();
  for (const e of settled) inputCount.set(e.to, (inputCount.get(e.to) ?? 0) + 1);
  const chainable = (e: ResolvedEdge): boolean => {
    if (options.chaining === false || e.partitioning.type !== "forward") return false;
    const target = graph.node(e.to) as PhysicalNode;
    if (target.kind === "source" || inputCount.get(e.to) !== 1) return false;
    if (target.kind === "operator" && (target.inputs.length !== 1 || target.spec.chainable === false)) return false;
    return parallelism.get(e.from) === parallelism.get(e.to);
  };
  const headOf = new Map<number, number>();
  const chainedIn = new Map<number, ResolvedEdge>();
  for (const e of settled) if (chainable(e)) chainedIn.set(e.to, e);
  const findHead = (id: number): number => {
    const known = headOf.get(id);
    if (known !== undefined) return known;
    const e = chainedIn.get(id);
    const h = e ? findHead(e.from) : id;
    headOf.set(id, h);
    return h;
  };
  for (const n of physical) findHead(n.id);

  // 5. Vertices in head order; nodes of a chain in id order (ids follow API call order, so inputs come first).
  const heads = physical.filter((n) => headOf.get(n.id) === n.id);
  const vertexOf = new Map<number, number>();
  heads.forEach((h, i) => { for (const n of physical) if (headOf.get(n.id) === h.id) vertexOf.set(n.id, i); });
  const jobEdges: JobEdge[] = settled
    .filter((e) => !chainedIn.has(e.to) || chainedIn.get(e.to) !== e)
    .map((e, id) => ({ ...e, id, fromVertex: vertexOf.get(e.from)!, toVertex: vertexOf.get(e.to)! }));
  const vertices: JobVertex[] = heads.map((h, i) => {
    const nodes = physical.filter((n) => vertexOf.get(n.id) === i);
    return {
      id: i,
      uid: h.uid,
      name: nodes.map((n) => n.name).join(" -> "),
      parallelism: parallelism.get(h.id)!,
      nodes,
      chained: settled.filter((e) => chainedIn.get(e.to) === e && vertexOf.get(e.to) === i),
      inputs: jobEdges.filter((e) => e.toVertex === i),
      outputs: jobEdges.filter((e) => e.fromVertex === i),
    };
  });
  for (const v of vertices) {
    if (v.nodes[0]!.kind !== "source" && v.inputs.length === 0) {
      throw new WeirError(ErrorCode.InvalidGraph, `operator "${v.nodes[0]!.name}" has no input`);
    }
  }
  return { vertices, edges: jobEdges, maxParallelism: options.maxParallelism };
}

/** A readable outline of the job graph (for `weir run --plan` and tests). */
export function describeJobGraph(g: JobGraph): string {
  const lines = g.vertices.map((v) => `[${v.id}] ${v.name} (parallelism ${v.parallelism})`);
  for (const e of g.edges) {
    lines.push(`  ${e.fromVertex} -> ${e.toVertex} ${e.partitioning.type}${e.tag ? ` side:${e.tag}` : ""}${e.inputIndex ? ` input ${e.inputIndex}` : ""}`);
  }
  return lines.join("\n");
}

/** The default parallelism a graph was built with: its widest operator's (operators may set less). */
export function defaultParallelism(graph: JobGraph): number {
  return Math.max(...graph.vertices.map((v) => v.parallelism));
}
