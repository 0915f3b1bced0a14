// The logical graph a job module builds: one node per API call, in call order, so loading the same
// module twice yields the same graph (node ids, uids and names are derived from that order).

import type { SinkDef, SourceDef } from "../contracts/connectors.ts";
import type { OperatorSpec } from "../contracts/operators.ts";
import { ErrorCode, WeirError } from "../core/errors.ts";
import { isPositiveInt } from "../core/validation.ts";
import { assertToken, slug } from "../core/names.ts";

export type Partitioning =
  | { readonly type: "forward" }
  | { readonly type: "rebalance" }
  | { readonly type: "hash"; readonly selector: (value: any) => unknown }
  | { readonly type: "broadcast" };

export interface NodeOptions {
  readonly name?: string;
  readonly uid?: string;
  readonly parallelism?: number;
}

interface NodeBase {
  readonly id: number;
  readonly name: string;
  readonly uid: string;
  readonly parallelism?: number;
}
export interface SourceNode extends NodeBase { readonly kind: "source"; readonly source: SourceDef<unknown> }
export interface OperatorNode extends NodeBase {
  readonly kind: "operator";
  /** One list of upstream node ids per logical input (two for connect). */
  readonly inputs: ReadonlyArray<readonly number[]>;
  readonly spec: OperatorSpec;
  /** The text of the user's functions it runs (user-code.ts): what workers of one job compare. */
  readonly code?: string;
}
export interface SinkNode extends NodeBase { readonly kind: "sink"; readonly input: number; readonly sink: SinkDef<unknown> }
/** Virtual: fans several streams into one. */
export interface UnionNode { readonly kind: "union"; readonly id: number; readonly inputs: readonly number[] }
/** Virtual: how records move to the next operator (keyBy, rebalance, forward). */
export interface PartitionNode { readonly kind: "partition"; readonly id: number; readonly input: number; readonly partitioning: Partitioning }
/** Virtual: the records an operator sent to a side output tag. */
export interface SideOutputNode { readonly kind: "side"; readonly id: number; readonly input: number; readonly tag: string }
/**
 * Virtual: DataStream.cache() (FLIP-205). Its input's records, written to the environment's cache store
 * the first time a job computes them; later jobs of the environment read them from there instead (see
 * execution-plan.ts). `uid` names the cached stream.
 */
export interface CacheNode { readonly kind: "cache"; readonly id: number; readonly input: number; readonly uid: string; readonly name: string }

export type StreamNode = SourceNode | OperatorNode | SinkNode | UnionNode | PartitionNode | SideOutputNode | CacheNode;

/** What the job graph is built from: a StreamGraph, or the plan of one execution of it. */
export interface GraphView {
  readonly nodes: readonly StreamNode[];
  node(id: number): StreamNode;
}
export type PhysicalNode = SourceNode | OperatorNode | SinkNode;

export function isPhysical(n: StreamNode): n is PhysicalNode {
  return n.kind === "source" || n.kind === "operator" || n.kind === "sink";
}

/** A keyed operator (keyBy before it): it has keyed state and a key-group range. */
export function isKeyedOperator(n: StreamNode): n is OperatorNode {
  return n.kind === "operator" && n.spec.keySelectors !== undefined;
}

export class StreamGraph implements GraphView {
  readonly nodes: StreamNode[] = [];
  private readonly uids = new Set<string>();

  node(id: number): StreamNode {
    const n = this.nodes[id];
    if (!n) throw new WeirError(ErrorCode.InvalidGraph, `no stream node ${id}`);
    return n;
  }

  private nextId(): number { return this.nodes.length; }

  private identity(defaultName: string, options: NodeOptions | undefined): NodeBase {
    const id = this.nextId();
    const name = options?.name ?? defaultName;
    const uid = options?.uid ?? this.defaultUid(name, options?.name !== undefined, id);
    assertToken("operator uid", uid);
    if (this.uids.has(uid)) throw new WeirError(ErrorCode.InvalidGraph, `operator uid "${uid}" is used twice; uids must be unique within a job (an operator named "${uid}" without a uid takes its name as uid)`);
    this.uids.add(uid);
    if (options?.parallelism !== undefined && !isPositiveInt(options.parallelism)) {
      throw new WeirError(ErrorCode.InvalidOption, `operator "${name}": parallelism must be a positive integer, got ${options.parallelism}`);
    }
    return { id, name, uid, ...(options?.parallelism !== undefined ? { parallelism: options.parallelism } : {}) };
  }

  /**
   * A named operator's uid is its name (what the user reads in subtask ids, status and metrics) unless an
   * earlier operator took it; others' is `<name>-<position>`. Either is the same each time the module builds.
   */
  private defaultUid(name: string, named: boolean, id: number): string {
    const base = slug(name);
    if (named && !this.uids.has(base)) return base;
    let uid = `${base}-${id}`;
    for (let n = 2; this.uids.has(uid); n++) uid = `${base}-${id}-${n}`;
    return uid;
  }

  addSource(source: SourceDef<unknown>, options?: NodeOptions): number {
    const n: SourceNode = { ...this.identity(`Source: ${source.kind}`, options), kind: "source", source };
    this.nodes.push(n);
    return n.id;
  }

  addOperator(defaultName: string, inputs: ReadonlyArray<readonly number[]>, spec: OperatorSpec, options?: NodeOptions, code?: string): number {
    const n: OperatorNode = { ...this.identity(defaultName, options), kind: "operator", inputs, spec, ...(code === undefined ? {} : { code }) };
    this.nodes.push(n);
    return n.id;
  }

  addSink(input: number, sink: SinkDef<unknown>, options?: NodeOptions): number {
    const n: SinkNode = { ...this.identity(`Sink: ${sink.kind}`, options), kind: "sink", input, sink };
    this.nodes.push(n);
    return n.id;
  }

  addUnion(inputs: readonly number[]): number {
    const n: UnionNode = { kind: "union", id: this.nextId(), inputs };
    this.nodes.push(n);
    return n.id;
  }

  addPartition(input: number, partitioning: Partitioning): number {
    const n: PartitionNode = { kind: "partition", id: this.nextId(), input, partitioning };
    this.nodes.push(n);
    return n.id;
  }

  addCache(input: number): number {
    const upstream = this.node(input);
    // A side output is an operator's output too (its records under a tag), as Flink's SideOutputDataStream#cache.
    const producer = upstream.kind === "side" ? this.node(upstream.input) : upstream;
    if (producer.kind !== "source" && producer.kind !== "operator") {
      const what = upstream.kind === "cache" ? "the stream is cached already: use it as it is" : "a keyBy, union or rebalance only moves records: cache the stream before it";
      throw new WeirError(ErrorCode.InvalidGraph, `cache(): cache the output of a source or an operator, or an operator's side output (${what})`);
    }
    const { id, uid, name } = this.identity(`Cache: ${producer.name}${upstream.kind === "side" ? ` side output ${upstream.tag}` : ""}`, undefined);
    const n: CacheNode = { kind: "cache", id, input, uid, name };
    this.nodes.push(n);
    return n.id;
  }

  addSideOutput(input: number, tag: string): number {
    const n: SideOutputNode = { kind: "side", id: this.nextId(), input, tag };
    this.nodes.push(n);
    return n.id;
  }
}
