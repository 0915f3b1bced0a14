// Combines RecordAttributes as FLIP-327 does: across the channels of one input, backlog only while
// EVERY channel says backlog; across the inputs of a multi-input operator, backlog while ANY input is.
// Ended channels no longer count (a finished source does not hold the job in backlog), but an input that
// has left backlog does not go back to it when a channel ends: like a source that flips back to backlog
// (ignored, as in Flink), that would start a second sort after the first had drained; Flink keeps an
// ended channel's last attributes, which has the same effect.

export class RecordAttributesValve {
  private readonly backlog: boolean[];
  private readonly ended: boolean[];
  private combined = false;
  /** Went from backlog to non-backlog once: stays out of backlog. */
  private left = false;

  constructor(channelCount: number) {
    this.backlog = new Array<boolean>(channelCount).fill(false);
    this.ended = new Array<boolean>(channelCount).fill(false);
  }

  get isBacklog(): boolean { return this.combined; }

  /** Returns the new combined value when it changed. */
  input(channel: number, isBacklog: boolean): boolean | undefined {
    this.backlog[channel] = isBacklog;
    return this.recompute();
  }

  inputEnded(channel: number): boolean | undefined {
    this.ended[channel] = true;
    return this.recompute();
  }

  private recompute(): boolean | undefined {
    let all = true;
    let live = 0;
    for (let i = 0; i < this.backlog.length; i++) {
      if (this.ended[i]) continue;
      live++;
      if (!this.backlog[i]) { all = false; break; }
    }
    const next = live > 0 && all && !this.left;
    if (next === this.combined) return undefined;
    if (!next) this.left = true;
    this.combined = next;
    return next;
  }
}

/** The backlog status an operator sees: all-channels within an input, any-input across inputs. */
export class InputsAttributes {
  readonly valves: RecordAttributesValve[];
  private combined = false;
  constructor(channelsPerInput: readonly number[]) {
    this.valves = channelsPerInput.map((n) => new RecordAttributesValve(n));
  }
  get isBacklog(): boolean { return this.combined; }
  input(input: number, channel: number, isBacklog: boolean): boolean | undefined {
    return this.valves[input]!.input(channel, isBacklog) === undefined ? undefined : this.recompute();
  }
  ended(input: number, channel: number): boolean | undefined {
    return this.valves[input]!.inputEnded(channel) === undefined ? undefined : this.recompute();
  }
  private recompute(): boolean | undefined {
    const next = this.valves.some((v) => v.isBacklog);
    if (next === this.combined) return undefined;
    this.combined = next;
    return next;
  }
}
