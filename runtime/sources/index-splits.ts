// Array and generator sources read integer positions (an array's indexes, a generator's i). What a
// subtask has left to read is a list of splits, each the progression next, next + stride, ... below the
// source's end; subtask k of p starts with the one split [k, p]. A checkpoint keeps every subtask's
// splits. Restored at the same parallelism, subtask k takes its own; at another, the splits of all old
// subtasks are pooled, each cut into m ([n, s] into [n + r·s, m·s] for r < m) so that their count is a
// multiple of the parallelism, and dealt out (split j to subtask j mod p), as Flink's NumberSequenceSource
// reassigns its splits.
// A subtask reads its splits' indexes in increasing order (an array source at parallelism 1 keeps order).
// A split read to the source's end stays in the state with its position: restored under a larger end (a
// bounded generator's job run again with a higher count, or unbounded, an array that grew) it goes on
// from there instead of being read from the start or not at all.

import type { SourceContext } from "../contracts/connectors.ts";
import { ErrorCode, WeirError } from "../core/errors.ts";

export type IndexSplit = readonly [next: number, stride: number];
export interface IndexSplitsState { readonly splits: readonly IndexSplit[] }

/** A state checkpointed before splits (one position per subtask), as a split; undefined if it is not one. */
export type LegacyState = (state: unknown, oldIndex: number, oldParallelism: number) => IndexSplit | undefined;

const gcd = (a: number, b: number): number => (b === 0 ? a : gcd(b, a % b));
const isIndex = (n: unknown, min: number): n is number => typeof n === "number" && Number.isSafeInteger(n) && n >= min;

function splitsOf(state: unknown, oldIndex: number, oldParallelism: number, legacy: LegacyState): readonly IndexSplit[] | undefined {
  const splits = (state as Partial<IndexSplitsState> | null)?.splits;
  if (Array.isArray(splits)) {
    return splits.every((s) => Array.isArray(s) && s.length === 2 && isIndex(s[0], 0) && isIndex(s[1], 1)) ? (splits as IndexSplit[]) : undefined;
  }
  const old = legacy(state, oldIndex, oldParallelism);
  return old === undefined ? undefined : [old];
}

/** This subtask's splits: the first ones, or its share of the restored ones. `end`: Infinity when unbounded. */
export function assignedSplits(ctx: SourceContext, kind: string, end: number, legacy: LegacyState): IndexSplit[] {
  const raw = ctx.restoredState;
  const p = ctx.parallelism;
  if (raw === undefined) return [[ctx.subtaskIndex, p]];
  const states = Array.isArray(raw) ? raw : [raw];
  const restored = (state: unknown, oldIndex: number): readonly IndexSplit[] => {
    const splits = splitsOf(state, oldIndex, states.length, legacy);
    if (splits === undefined) throw new WeirError(ErrorCode.Source, `Sources.${kind} (${ctx.operatorName}): restored state ${JSON.stringify(state)?.slice(0, 60)} is not this source's`);
    return splits;
  };
  // At the same parallelism only its own (a hybrid source restored in different parts passes no state for
  // the subtasks in another part).
  if (states.length === p) return [...restored(states[ctx.subtaskIndex], ctx.subtaskIndex)];
  const all = states.flatMap(restored);
  let live = all.filter(([next]) => next < end);
  // Cut each split with indexes left into m so that their count is a multiple of p: every subtask gets as
  // many. Finished ones are dealt out as they are (nothing to share now, positions to keep).
  const m = live.length === 0 ? 1 : p / gcd(live.length, p);
  if (m > 1) live = live.flatMap(([next, stride]) => Array.from({ length: m }, (_, r): IndexSplit => [next + r * stride, stride * m]));
  const finished = all.filter(([next]) => next >= end);
  const mine = (_: IndexSplit, j: number) => j % p === ctx.subtaskIndex;
  return [...live.filter(mine), ...finished.filter(mine)];
}

/** Reads a subtask's splits in increasing index order; the state keeps the finished ones too. */
export class IndexCursor {
  private readonly next: number[];
  private readonly stride: number[];
  private readonly finished: IndexSplit[];

  constructor(splits: readonly IndexSplit[], private readonly end: number) {
    const live = splits.filter(([n]) => n < end);
    this.next = live.map(([n]) => n);
    this.stride = live.map(([, s]) => s);
    this.finished = splits.filter(([n]) => n >= end);
  }

  get done(): boolean { return this.next.length === 0; }

  /** Up to `max` indexes, the smallest first, each given to `use`; how many. */
  take(max: number, use: (index: number) => void): number {
    if (this.next.length === 1) return this.takeFromOne(max, use);
    let taken = 0;
    while (taken < max && this.next.length > 0) {
      let k = 0;
      for (let j = 1; j < this.next.length; j++) if (this.next[j]! < this.next[k]!) k = j;
      use(this.next[k]!);
      taken++;
      this.next[k]! += this.stride[k]!;
      if (this.next[k]! >= this.end) this.finish(k);
    }
    return taken;
  }

  /** One split (no restore at another parallelism): a plain loop. */
  private takeFromOne(max: number, use: (index: number) => void): number {
    let n = this.next[0]!;
    const stride = this.stride[0]!;
    let taken = 0;
    for (; taken < max && n < this.end; taken++, n += stride) use(n);
    this.next[0] = n;
    if (n >= this.end) this.finish(0);
    return taken;
  }

  state(): IndexSplitsState {
    return { splits: [...this.next.map((n, k): IndexSplit => [n, this.stride[k]!]), ...this.finished] };
  }

  private finish(k: number): void {
    this.finished.push([this.next[k]!, this.stride[k]!]);
    this.next.splice(k, 1);
    this.stride.splice(k, 1);
  }
}
