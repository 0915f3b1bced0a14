// Instantiates the operators of one vertex for one subtask and wires them: an operator's output calls
// the next chained operator directly (a function call per record, no copy), fans out when several
// consumers read the same stream, and ends in NetworkOutputs or, for sinks, nowhere.

import type { JobVertex } from "../../runtime/graph/job-graph.ts";
import type { PhysicalNode } from "../../runtime/graph/stream-graph.ts";
import type { SourceSplits } from "../../runtime/contracts/connectors.ts";
import type { MaybePromise, OperatorContext, Output, SplitCollector, StreamOperator } from "../../runtime/contracts/operators.ts";
import { nullOutput, SinkOperator } from "../../runtime/operators/basic.ts";
import type { RecordAttributes } from "../../runtime/transport/frames.ts";
import type { NetworkOutput } from "./network-output.ts";

export interface ChainedOperator {
  readonly node: PhysicalNode;
  readonly operator: StreamOperator;
  readonly output: Output;
}

export interface OperatorChain {
  /** The output the head writes into: for a source vertex, the source's output; else the head operator's input. */
  readonly headOutput: Output;
  /** Non-source operators in topological order (head first for non-source vertices). */
  readonly operators: readonly ChainedOperator[];
}

/** Input side of an operator seen as an Output: records call processElement, control calls the hooks or forwards. */
class OperatorInput implements Output {
  constructor(private readonly op: StreamOperator, private readonly out: Output) {}
  collect(value: unknown, ts: number | undefined): MaybePromise { return this.op.processElement(value, ts, 0); }
  // The upstream operator's side output, which nothing reads (a read one goes through FanOutput): it is not
  // this operator's to pass on (forwarded, it came out of this operator's getSideOutput of the same tag).
  side(): void {}
  emitWatermark(w: number): MaybePromise { return this.op.onWatermark ? this.op.onWatermark(w) : this.out.emitWatermark(w); }
  emitIdle(idle: boolean): MaybePromise { return this.op.onIdle ? this.op.onIdle(idle) : this.out.emitIdle(idle); }
  emitAttributes(a: RecordAttributes): MaybePromise { return this.op.onAttributes ? this.op.onAttributes(a) : this.out.emitAttributes(a); }
  forSplits(splits: SourceSplits): SplitCollector | undefined { return this.op.readSplits?.(splits); }
}

/** Several consumers of one stream (and side outputs by tag). */
class FanOutput implements Output {
  constructor(private readonly main: readonly Output[], private readonly sides: ReadonlyMap<string, readonly Output[]>) {}
  collect(value: unknown, ts: number | undefined): MaybePromise { return all(this.main, (o) => o.collect(value, ts)); }
  side(tag: string, value: unknown, ts: number | undefined): MaybePromise {
    const targets = this.sides.get(tag);
    if (targets) return all(targets, (o) => o.collect(value, ts));
  }
  emitWatermark(w: number): MaybePromise { return all(this.everyone(), (o) => o.emitWatermark(w)); }
  emitIdle(idle: boolean): MaybePromise { return all(this.everyone(), (o) => o.emitIdle(idle)); }
  emitAttributes(a: RecordAttributes): MaybePromise { return all(this.everyone(), (o) => o.emitAttributes(a)); }
  private everyone(): Output[] { return [...this.main, ...[...this.sides.values()].flat()]; }
}

function all(outputs: readonly Output[], f: (o: Output) => MaybePromise): MaybePromise {
  if (outputs.length === 1) return f(outputs[0]!);
  let pending: Promise<void>[] | undefined;
  for (const o of outputs) {
    const p = f(o);
    if (p) (pending ??= []).push(p);
  }
  if (pending) return Promise.all(pending).then(() => undefined);
}

export function buildChain(
  vertex: JobVertex,
  networkOutputs: ReadonlyMap<number, NetworkOutput>,
  contextFor: (node: PhysicalNode, output: Output) => OperatorContext,
): OperatorChain {
  const inputOf = new Map<number, Output>(); // node id → Output feeding it
  const operators: ChainedOperator[] = [];
  // Build from the end of the chain backwards so each node's consumers exist when it is wired.
  const outputFor = (node: PhysicalNode): Output => {
    const main: Output[] = [];
    const sides = new Map<string, Output[]>();
    const push = (tag: string | undefined, o: Output) => {
      if (tag === undefined) main.push(o);
      else sides.set(tag, [...(sides.get(tag) ?? []), o]);
    };
    for (const e of vertex.chained) if (e.from === node.id) push(e.tag, inputOf.get(e.to)!);
    for (const e of vertex.outputs) if (e.from === node.id) push(e.tag, networkOutputs.get(e.id)!);
    if (main.length === 0 && sides.size === 0) return nullOutput;
    if (main.length === 1 && sides.size === 0) return main[0]!;
    return new FanOutput(main, sides);
  };
  for (let i = vertex.nodes.length - 1; i >= 0; i--) {
    const node = vertex.nodes[i]!;
    const out = outputFor(node);
    if (node.kind === "source") {
      inputOf.set(node.id, out);
      continue;
    }
    const ctx = contextFor(node, out);
    const operator = node.kind === "sink" ? new SinkOperator(node.sink, ctx) : node.spec.create(ctx);
    operators.unshift({ node, operator, output: out });
    inputOf.set(node.id, new OperatorInput(operator, out));
  }
  return { headOutput: inputOf.get(vertex.nodes[0]!.id)!, operators };
}
