// Per-key timers of a keyed operator: event-time timers fire when the watermark passes them,
// processing-time timers when the clock does; both in timestamp order, deduplicated per (key, time).
// Timers are keyed state: the service remembers which key groups' timers changed, so that a checkpoint
// stores those groups only (timer-state.ts).

import { TimerHeap } from "./timer-heap.ts";

export interface Timer {
  readonly timestamp: number;
  readonly keyId: string;
  readonly key: unknown;
  readonly keyGroup: number;
}

const idOf = (timestamp: number, keyId: string): string => `${timestamp}|${keyId}`;

/**
 * The timers of one kind: a heap over all keys (firing by watermark or clock) and one per key (firing one
 * key's timers while a sorted backlog drains, O(log n) each), both with lazy deletion: a timer is live
 * while `live` maps its id to it.
 */
class TimerQueue {
  private readonly heap = new TimerHeap<Timer>();
  private readonly live = new Map<string, Timer>();
  /** Each key's timers, and how many of them are live. */
  private readonly byKey = new Map<string, { readonly heap: TimerHeap<Timer>; live: number }>();
  /** The live timers of each key group, for checkpoints. */
  private readonly byGroup = new Map<number, Set<Timer>>();
  private readonly isLive = (t: Timer): boolean => this.live.get(idOf(t.timestamp, t.keyId)) === t;

  constructor(private readonly changed: (keyGroup: number) => void) {}

  get size(): number { return this.live.size; }

  /** Heap entries held, live or dead but not yet dropped (bounded by about twice the live timers). */
  get heldEntries(): number {
    let n = this.heap.length;
    for (const k of this.byKey.values()) n += k.heap.length;
    return n;
  }

  add(t: Timer): boolean {
    const id = idOf(t.timestamp, t.keyId);
    if (this.live.has(id)) return false;
    this.live.set(id, t);
    this.heap.push(t);
    let mine = this.byKey.get(t.keyId);
    if (mine === undefined) this.byKey.set(t.keyId, (mine = { heap: new TimerHeap<Timer>(), live: 0 }));
    mine.heap.push(t);
    mine.live++;
    let group = this.byGroup.get(t.keyGroup);
    if (group === undefined) this.byGroup.set(t.keyGroup, (group = new Set()));
    group.add(t);
    this.changed(t.keyGroup);
    return true;
  }

  /**
   * Removes and returns the key's earliest live timer with timestamp ≤ `upTo`: one at a time, so that a
   * timer an onTimer registers before the next one due fires first (as Flink's timer queue does).
   */
  pollFirstForKey(keyId: string, upTo: number): Timer | undefined {
    const first = this.byKey.get(keyId)?.heap.peek(this.isLive);
    if (first === undefined || first.timestamp > upTo) return undefined;
    this.remove(first);
    return first;
  }

  /** The key's latest live timer. */
  lastForKey(keyId: string): Timer | undefined {
    return this.byKey.get(keyId)?.heap.latest(this.isLive);
  }

  delete(timestamp: number, keyId: string): void {
    const t = this.live.get(idOf(timestamp, keyId));
    if (t !== undefined) this.remove(t);
  }

  peek(): Timer | undefined {
    return this.heap.peek(this.isLive);
  }

  /** Removes and returns the earliest live timer with timestamp ≤ `upTo`. */
  pollUpTo(upTo: number): Timer | undefined {
    const top = this.heap.peek(this.isLive);
    if (!top || top.timestamp > upTo) return undefined;
    this.heap.pop();
    this.remove(top);
    return top;
  }

  all(): Timer[] {
    return [...this.live.values()];
  }

  /** The live timers of `keyGroup` (no order). */
  ofGroup(keyGroup: number): Iterable<Timer> {
    return this.byGroup.get(keyGroup) ?? [];
  }

  /** Ends a live timer: its heap entries die (compacted once the dead outnumber the live). */
  private remove(t: Timer): void {
    this.live.delete(idOf(t.timestamp, t.keyId));
    const mine = this.byKey.get(t.keyId);
    if (mine !== undefined) {
      if (--mine.live === 0) this.byKey.delete(t.keyId);
      else mine.heap.compact(mine.live, this.isLive);
    }
    this.heap.compact(this.live.size, this.isLive);
    const group = this.byGroup.get(t.keyGroup);
    if (group !== undefined && group.delete(t) && group.size === 0) this.byGroup.delete(t.keyGroup);
    this.changed(t.keyGroup);
  }
}

export class InternalTimerService {
  /** Key groups whose timers changed since the last checkpoint took them. */
  private changedGroups = new Set<number>();
  private readonly markChanged = (keyGroup: number): void => { this.changedGroups.add(keyGroup); };
  readonly eventTime = new TimerQueue(this.markChanged);
  readonly processingTime = new TimerQueue(this.markChanged);

  /** The key groups whose timers changed since the last call (a checkpoint stores exactly those). */
  takeChangedGroups(): number[] {
    const groups = [...this.changedGroups];
    this.changedGroups = new Set();
    return groups;
  }

  /** Key groups to store again (their write failed). */
  markGroupsChanged(groups: Iterable<number>): void {
    for (const g of groups) this.changedGroups.add(g);
  }
}
