// Per-key timers of a keyed operator: event-time timers fire when the watermark passes them,
// processing-time timers when the clock does; both in timestamp order, deduplicated per (key, time).

export interface Timer {
  readonly timestamp: number;
  readonly keyId: string;
  readonly key: unknown;
  readonly keyGroup: number;
}

/** A binary min-heap on (timestamp, keyId) with lazy deletion through the `live` set. */
class TimerQueue {
  private heap: Timer[] = [];
  private readonly live = new Set<string>();
  /** The timers of each key, for firing one key's timers while a sorted backlog drains. */
  private readonly byKey = new Map<string, Timer[]>();

  get size(): number { return this.live.size; }

  add(t: Timer): boolean {
    const id = `${t.timestamp}|${t.keyId}`;
    if (this.live.has(id)) return false;
    this.live.add(id);
    this.heap.push(t);
    this.up(this.heap.length - 1);
    const mine = this.byKey.get(t.keyId);
    if (mine) mine.push(t);
    else this.byKey.set(t.keyId, [t]);
    return true;
  }

  /** Removes and returns `keyId`'s live timers with timestamp ≤ `upTo`, earliest first. */
  pollForKey(keyId: string, upTo: number): Timer[] {
    const mine = this.byKey.get(keyId);
    if (!mine) return [];
    const due: Timer[] = [];
    const rest: Timer[] = [];
    for (const t of mine) {
      if (!this.live.has(`${t.timestamp}|${t.keyId}`)) continue;
      (t.timestamp <= upTo ? due : rest).push(t);
    }
    for (const t of due) this.live.delete(`${t.timestamp}|${t.keyId}`);
    if (rest.length) this.byKey.set(keyId, rest);
    else this.byKey.delete(keyId);
    return due.sort((a, b) => a.timestamp - b.timestamp);
  }

  delete(timestamp: number, keyId: string): void {
    this.live.delete(`${timestamp}|${keyId}`);
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
    this.live.delete(`${top.timestamp}|${top.keyId}`);
    const mine = this.byKey.get(top.keyId);
    if (mine) {
      const left = mine.filter((t) => t !== top);
      if (left.length) this.byKey.set(top.keyId, left);
      else this.byKey.delete(top.keyId);
    }
    return top;
  }

  all(): Timer[] {
    return this.heap.filter((t) => this.live.has(`${t.timestamp}|${t.keyId}`));
  }

  private dropDead(): void {
    while (this.heap.length && !this.live.has(`${this.heap[0]!.timestamp}|${this.heap[0]!.keyId}`)) this.pop();
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
  readonly eventTime = new TimerQueue();
  readonly processingTime = new TimerQueue();
}
