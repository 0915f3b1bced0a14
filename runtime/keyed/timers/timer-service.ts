// Per-key timers of a keyed operator: event-time timers fire when the watermark passes them,
// processing-time timers when the clock does; both in timestamp order, deduplicated per (key, time).
// Timers are keyed state: the service remembers which key groups' timers changed, so that a checkpoint
// stores those groups only (timer-state.ts).

export interface Timer {
  readonly timestamp: number;
  readonly keyId: string;
  readonly key: unknown;
  readonly keyGroup: number;
}

const idOf = (timestamp: number, keyId: string): string => `${timestamp}|${keyId}`;

/** A binary min-heap on (timestamp, keyId) with lazy deletion: a timer is live while `live` maps its id to it. */
class TimerQueue {
  private heap: Timer[] = [];
  private readonly live = new Map<string, Timer>();
  /** The timers of each key, for firing one key's timers while a sorted backlog drains. */
  private readonly byKey = new Map<string, Timer[]>();
  /** The live timers of each key group, for checkpoints. */
  private readonly byGroup = new Map<number, Set<Timer>>();

  constructor(private readonly changed: (keyGroup: number) => void) {}

  get size(): number { return this.live.size; }

  add(t: Timer): boolean {
    const id = idOf(t.timestamp, t.keyId);
    if (this.live.has(id)) return false;
    this.live.set(id, t);
    this.heap.push(t);
    this.up(this.heap.length - 1);
    const mine = this.byKey.get(t.keyId);
    if (mine) mine.push(t);
    else this.byKey.set(t.keyId, [t]);
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
    const mine = this.byKey.get(keyId);
    if (!mine) return undefined;
    let first: Timer | undefined;
    const rest: Timer[] = [];
    for (const t of mine) {
      if (!this.isLive(t)) continue;
      if (t.timestamp <= upTo && (first === undefined || t.timestamp < first.timestamp)) {
        if (first) rest.push(first);
        first = t;
      } else rest.push(t);
    }
    if (first) this.remove(first);
    if (rest.length) this.byKey.set(keyId, rest);
    else this.byKey.delete(keyId);
    return first;
  }

  delete(timestamp: number, keyId: string): void {
    const t = this.live.get(idOf(timestamp, keyId));
    if (t !== undefined) this.remove(t);
  }

  peek(): Timer | undefined {
    this.dropDead();
    return this.heap[0];
  }

  /** Removes and returns the earliest live timer with timestamp ≤ `upTo`. */
  pollUpTo(upTo: number): Timer | undefined {
    this.dropDead();
    const top = this.heap[0];
    if (!top || top.timestamp > upTo) return undefined;
    this.pop();
    this.remove(top);
    const mine = this.byKey.get(top.keyId);
    if (mine) {
      const left = mine.filter((t) => t !== top && this.isLive(t));
      if (left.length) this.byKey.set(top.keyId, left);
      else this.byKey.delete(top.keyId);
    }
    return top;
  }

  all(): Timer[] {
    return this.heap.filter((t) => this.isLive(t));
  }

  /** The live timers of `keyGroup` (no order). */
  ofGroup(keyGroup: number): Iterable<Timer> {
    return this.byGroup.get(keyGroup) ?? [];
  }

  private isLive(t: Timer): boolean {
    return this.live.get(idOf(t.timestamp, t.keyId)) === t;
  }

  private remove(t: Timer): void {
    this.live.delete(idOf(t.timestamp, t.keyId));
    const group = this.byGroup.get(t.keyGroup);
    if (group !== undefined && group.delete(t) && group.size === 0) this.byGroup.delete(t.keyGroup);
    this.changed(t.keyGroup);
  }

  private dropDead(): void {
    while (this.heap.length && !this.isLive(this.heap[0]!)) this.pop();
  }

  private pop(): void {
    const last = this.heap.pop()!;
    if (this.heap.length) {
      this.heap[0] = last;
      this.down(0);
    }
  }

  private less(a: Timer, b: Timer): boolean {
    return a.timestamp < b.timestamp || (a.timestamp === b.timestamp && a.keyId < b.keyId);
  }

  private up(i: number): void {
    const h = this.heap;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (!this.less(h[i]!, h[p]!)) break;
      [h[i], h[p]] = [h[p]!, h[i]!];
      i = p;
    }
  }

  private down(i: number): void {
    const h = this.heap;
    for (;;) {
      const l = 2 * i + 1;
      const r = l + 1;
      let m = i;
      if (l < h.length && this.less(h[l]!, h[m]!)) m = l;
      if (r < h.length && this.less(h[r]!, h[m]!)) m = r;
      if (m === i) return;
      [h[i], h[m]] = [h[m]!, h[i]!];
      i = m;
    }
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
