// Exactly-once barrier alignment: when a checkpoint's barrier arrives on one channel, that channel's
// later frames are held (not dropped) until the same barrier has arrived on every live channel; then the
// subtask snapshots, forwards the barrier and releases the held channels. Ended channels count as
// aligned. A barrier of a newer checkpoint while aligning an older one abandons the older one.

export type AlignerAction =
  | { readonly type: "block"; readonly channel: number }
  | { readonly type: "aligned"; readonly checkpointId: number; readonly release: readonly number[] }
  | { readonly type: "abandoned"; readonly checkpointId: number; readonly release: readonly number[] }
  | { readonly type: "ignore" };

export class BarrierAligner {
  private current: number | undefined;
  private readonly arrived = new Set<number>();
  private readonly ended = new Set<number>();
  private readonly started = new Map<number, number>();

  constructor(private readonly channelCount: number) {}

  get aligning(): number | undefined { return this.current; }
  get blockedChannels(): number[] { return [...this.arrived]; }

  /** A barrier of checkpoint `id` arrived on `channel`. */
  onBarrier(channel: number, id: number, now = Date.now()): AlignerAction[] {
    const out: AlignerAction[] = [];
    if (this.current !== undefined && id < this.current) return [{ type: "ignore" }];
    if (this.current !== undefined && id > this.current) {
      out.push({ type: "abandoned", checkpointId: this.current, release: [...this.arrived] });
      this.arrived.clear();
      this.current = undefined;
    }
    if (this.current === undefined) {
      this.current = id;
      this.started.set(id, now);
    }
    if (this.arrived.size + 1 + this.ended.size >= this.channelCount) {
      out.push(this.complete());
    } else {
      this.arrived.add(channel);
      out.push({ type: "block", channel });
    }
    return out;
  }

  /** A channel ended: it no longer has to deliver barriers. */
  onEndOfInput(channel: number): AlignerAction[] {
    this.ended.add(channel);
    this.arrived.delete(channel);
    if (this.current !== undefined && this.arrived.size + this.ended.size >= this.channelCount) return [this.complete()];
    return [];
  }

  /** How long checkpoint `id` has been aligning (ms), once aligned. */
  alignmentStartedAt(id: number): number | undefined { return this.started.get(id); }

  private complete(): AlignerAction {
    const id = this.current!;
    const release = [...this.arrived];
    this.arrived.clear();
    this.current = undefined;
    return { type: "aligned", checkpointId: id, release };
  }
}
