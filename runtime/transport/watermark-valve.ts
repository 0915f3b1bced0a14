// Combines the watermarks of the channels of one input as Flink's StatusWatermarkValve does: the output
// watermark is the minimum over active channels; idle and ended channels do not hold it back; a channel
// that turns active again only counts once it has caught up with the last output watermark (it is
// "unaligned" until then); the output is idle when every channel is idle, and then at the highest
// watermark any of them reached.
//
// A channel that ends below the final watermark was stopped (a graceful stop, Flink's stop without
// --drain: a bounded end sends MAX_WATERMARK first): what it did not deliver is still in its source, read
// again by the next run. It keeps holding the watermark where it was, or a channel still running would
// fire windows and timers on input the stopped one never delivered (late when the next run reads it).

import { MAX_WATERMARK, MIN_WATERMARK } from "./frames.ts";

interface ChannelState {
  watermark: number;
  idle: boolean;
  aligned: boolean;
  ended: boolean;
  /** Ended below MAX_WATERMARK (stopped): its last watermark still bounds the output. */
  holds: boolean;
}

export type ValveOutput = { watermark?: number; idle?: boolean };

export class WatermarkValve {
  private readonly channels: ChannelState[];
  private lastOutput = MIN_WATERMARK;
  private outputIdle = false;

  constructor(channelCount: number) {
    this.channels = Array.from({ length: channelCount }, () => ({ watermark: MIN_WATERMARK, idle: false, aligned: true, ended: false, holds: false }));
  }

  get currentWatermark(): number { return this.lastOutput; }
  get isIdle(): boolean { return this.outputIdle; }

  /** A watermark arrived on `channel`. Returns the new output watermark, if it advanced. */
  inputWatermark(channel: number, watermark: number): ValveOutput {
    const c = this.channels[channel]!;
    if (c.idle || c.ended || watermark <= c.watermark) return {};
    c.watermark = watermark;
    if (!c.aligned && watermark >= this.lastOutput) c.aligned = true;
    return this.advance();
  }

  /** The channel's watermark status changed (idle ↔ active). */
  inputStatus(channel: number, idle: boolean): ValveOutput {
    const c = this.channels[channel]!;
    if (c.ended || c.idle === idle) return {};
    c.idle = idle;
    if (idle) {
      c.aligned = false;
      const out = this.advance();
      if (this.channels.every((x) => x.idle || (x.ended && !x.holds)) && !this.outputIdle) {
        this.outputIdle = true;
        // The last active channel went idle: the output moves to the highest watermark any idle channel
        // reached (Flink's findAndOutputMaxWatermarkAcrossAllChannels), or windows the others already
        // passed would wait for new input to fire.
        let max = this.lastOutput;
        for (const x of this.channels) if (x.idle && x.watermark > max) max = x.watermark;
        if (max > this.lastOutput) {
          this.lastOutput = max;
          return { watermark: max, idle: true };
        }
        return { ...out, idle: true };
      }
      return out;
    }
    // Active again: it counts for the minimum only once it catches up with the output watermark.
    c.aligned = c.watermark >= this.lastOutput;
    if (this.outputIdle) {
      this.outputIdle = false;
      return { idle: false };
    }
    return {};
  }

  /** The channel delivered end-of-input: after the final watermark it no longer holds the output back; stopped below it, it does (see the header). */
  inputEnded(channel: number): ValveOutput {
    const c = this.channels[channel]!;
    if (c.ended) return {};
    c.ended = true;
    if (c.watermark < MAX_WATERMARK && !c.idle && c.aligned) {
      c.holds = true;
      return {};
    }
    c.aligned = false;
    return this.advance();
  }

  private advance(): ValveOutput {
    let min = Number.POSITIVE_INFINITY;
    let any = false;
    for (const c of this.channels) {
      if (c.idle || (c.ended && !c.holds) || !c.aligned) continue;
      any = true;
      if (c.watermark < min) min = c.watermark;
    }
    if (any && min > this.lastOutput) {
      this.lastOutput = min;
      return { watermark: min };
    }
    return {};
  }
}

/**
 * The watermark an operator sees across its inputs: each input's channels go through a WatermarkValve,
 * and the operator's watermark is the minimum over inputs that are not idle (Flink's two-input rule).
 */
export class InputsWatermark {
  readonly valves: WatermarkValve[];
  private last = MIN_WATERMARK;
  private idle = false;

  constructor(channelsPerInput: readonly number[]) {
    this.valves = channelsPerInput.map((n) => new WatermarkValve(n));
  }

  get current(): number { return this.last; }

  watermark(input: number, channel: number, w: number): ValveOutput { return this.combine(this.valves[input]!.inputWatermark(channel, w)); }
  status(input: number, channel: number, idle: boolean): ValveOutput { return this.combine(this.valves[input]!.inputStatus(channel, idle)); }
  ended(input: number, channel: number): ValveOutput { return this.combine(this.valves[input]!.inputEnded(channel)); }

  private combine(changed: ValveOutput): ValveOutput {
    if (changed.watermark === undefined && changed.idle === undefined) return {};
    const out: { watermark?: number; idle?: boolean } = {};
    const active = this.valves.filter((v) => !v.isIdle);
    const allIdle = active.length === 0;
    if (allIdle !== this.idle) {
      this.idle = allIdle;
      out.idle = allIdle;
    }
    // One input: its valve's output as it is (it may advance as it turns idle). Several: the minimum over
    // inputs not idle, none when all are (Flink's CombinedWatermarkStatus).
    if (!allIdle || this.valves.length === 1) {
      const min = Math.min(...(allIdle ? this.valves : active).map((v) => v.currentWatermark));
      if (min > this.last) {
        this.last = min;
        out.watermark = min;
      }
    }
    return out;
  }
}
