// A binary min-heap of timers on (timestamp, key id) with lazy deletion: the queue (timer-service.ts)
// decides which entries are live; dead ones are dropped when they reach the top, and the heap is rebuilt
// from its live entries once the dead outnumber them (a timer reset on every record, deleted and
// registered again, would otherwise grow it without bound).

/** What the heap orders by: a timer's time, then its key. */
interface Timed { readonly timestamp: number; readonly keyId: string }

const less = (a: Timed, b: Timed): boolean => a.timestamp < b.timestamp || (a.timestamp === b.timestamp && a.keyId < b.keyId);

export class TimerHeap<Timer extends Timed> {
  private heap: Timer[] = [];

  get length(): number { return this.heap.length; }

  push(t: Timer): void {
    this.heap.push(t);
    this.up(this.heap.length - 1);
  }

  /** The earliest live timer, dead ones above it dropped. */
  peek(isLive: (t: Timer) => boolean): Timer | undefined {
    while (this.heap.length > 0 && !isLive(this.heap[0]!)) this.pop();
    return this.heap[0];
  }

  /** The latest live timer (a scan: for a key's few timers). */
  latest(isLive: (t: Timer) => boolean): Timer | undefined {
    let last: Timer | undefined;
    for (const t of this.heap) if (isLive(t) && (last === undefined || less(last, t))) last = t;
    return last;
  }

  /** Removes the top entry. */
  pop(): void {
    const last = this.heap.pop()!;
    if (this.heap.length > 0) {
      this.heap[0] = last;
      this.down(0);
    }
  }

  /** Rebuilds from the live entries when more than half are dead (amortized O(1) per deletion). */
  compact(live: number, isLive: (t: Timer) => boolean): void {
    if (this.heap.length <= 2 * live + 64) return;
    this.heap = this.heap.filter(isLive);
    for (let i = (this.heap.length >> 1) - 1; i >= 0; i--) this.down(i);
  }

  private up(i: number): void {
    const h = this.heap;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (!less(h[i]!, h[p]!)) break;
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
      if (l < h.length && less(h[l]!, h[m]!)) m = l;
      if (r < h.length && less(h[r]!, h[m]!)) m = r;
      if (m === i) return;
      [h[i], h[m]] = [h[m]!, h[i]!];
      i = m;
    }
  }
}
