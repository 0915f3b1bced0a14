// The consumer end of a subtask's channels: one subscription per channel, frames queued in arrival
// order, and credits returned to the producer as frames are consumed. A producer never has more than
// `creditWindow` frames outstanding per channel, so the queue here is bounded without dropping anything.
// The gate also carries the subtask's mailbox (timers, control), so the run loop waits on one thing.
// Frames are numbered per channel: a frame that is not the next number means frames were lost (core NATS
// keeps nothing across a server restart or a client reconnect), which `onGap` reports before anything
// after the gap, a checkpoint barrier included, is processed. Grants are cumulative ("up to frame N").

import type { NatsConnection, Subscription } from "@nats-io/transport-node";
import { decodeFrame, isProbe, type Frame } from "./frames.ts";
import { RecordBuilder } from "./record-columns.ts";
import { ErrorCode, WeirError } from "../core/errors.ts";

export interface InputChannelSpec {
  /** Data subject of the channel. */
  readonly subject: string;
  /** The producer's credit inbox and how it names this channel there. */
  readonly creditSubject: string;
  readonly creditTag: string;
  /** 0 or 1: which input of the head operator. */
  readonly inputIndex: number;
  /** Position among the channels of that input (for the watermark and attributes valves). */
  readonly indexInInput: number;
  readonly description: string;
}

export type MailAction = () => void | Promise<void>;

export type GateItem =
  | { readonly type: "frame"; readonly channel: number; readonly frame: Frame }
  | { readonly type: "mail"; readonly action: MailAction };

/** Frames of a channel went missing: what was published before the next frame never arrived. */
export class ChannelGapError extends WeirError {
  constructor(readonly channel: string, readonly expected: number, readonly received: number | undefined, probedLast?: number) {
    super(ErrorCode.Transport, probedLast !== undefined
      ? `channel ${channel}: its producer published frames up to ${probedLast} before the NATS connection came back, and frame ${expected} never arrived: frames were lost in transit`
      : `channel ${channel}: frame ${received ?? "without a number"} arrived where frame ${expected} was due: frames were lost in transit (a NATS disconnect?)`);
    this.name = "ChannelGapError";
  }
}

/** Throws the gap (the subtask fails and the job restarts from its last checkpoint), or logs and resyncs. */
export type GapHandler = (gap: ChannelGapError) => void;

export const failOnGap: GapHandler = (gap) => { throw gap; };

export class InputGate {
  private readonly queue: Array<[channel: number, data: Uint8Array]> = [];
  private queueHead = 0;
  private readonly mail: MailAction[] = [];
  private wake: (() => void) | undefined;
  /** Also told at each signal: a source subtask's reader, whose wait for records mail must cut short. */
  private interrupt: (() => void) | undefined;
  /** Frames consumed per channel, in total. */
  private readonly consumed: number[];
  /** The cumulative grant last sent per channel (frames up to this number). */
  private readonly granted: number[];
  /** The number the next frame of each channel must carry. */
  private readonly nextSequence: number[];
  private readonly subscriptions: Subscription[] = [];
  /** Builds the records of column frames (one function per record shape, made once). */
  private readonly records = new RecordBuilder();
  private readonly blocked: boolean[];
  /** Frames held back from blocked channels (barrier alignment), per channel, in order. */
  private readonly held: Array<Array<Uint8Array>>;
  framesIn = 0;
  /** The frame size asked of producers with each grant (" r<records>"), when debloating. */
  private frameHint = "";

  constructor(
    private readonly nc: NatsConnection,
    readonly channels: readonly InputChannelSpec[],
    private readonly creditWindow: number,
    private readonly onGap: GapHandler = failOnGap,
  ) {
    this.consumed = channels.map(() => 0);
    this.granted = channels.map(() => 0);
    this.nextSequence = channels.map(() => 1);
    this.blocked = channels.map(() => false);
    this.held = channels.map(() => []);
  }

  /** Subscribes to every channel. Call before any producer may publish (then flush the connection). */
  subscribe(): void {
    this.channels.forEach((c, i) => {
      this.subscriptions.push(this.nc.subscribe(c.subject, {
        callback: (err, msg) => {
          if (err) return;
          // A producer back from a reconnect holds its frames until it hears from this end (channel-writer.ts).
          if (isProbe(msg.data)) this.regrantChannel(i);
          this.queue.push([i, msg.data]);
          this.signal();
        },
      }));
    });
  }

  /** Grants every producer its initial window. */
  start(): void {
    this.channels.forEach((_, i) => this.grant(i));
  }

  /** Sends every channel's grant again (after a reconnect: a grant lost on the way must not stall it). */
  regrant(): void {
    this.channels.forEach((_, i) => this.regrantChannel(i));
  }

  private regrantChannel(channel: number): void {
    const c = this.channels[channel]!;
    if (this.granted[channel]! > 0) this.nc.publish(c.creditSubject, `${c.creditTag} ${this.granted[channel]}${this.frameHint}`);
  }

  /**
   * Asks producers for frames of at most `records` records (buffer debloating): sent with every grant
   * from now on, and announced at once (with the grant they already have) once the gate has started.
   */
  setRecordsPerFrame(records: number, announce: boolean): void {
    this.frameHint = ` r${records}`;
    if (announce) this.regrant();
  }

  private grant(channel: number): void {
    const c = this.channels[channel]!;
    const limit = this.consumed[channel]! + this.creditWindow;
    this.granted[channel] = limit;
    this.nc.publish(c.creditSubject, `${c.creditTag} ${limit}${this.frameHint}`);
  }

  enqueue(action: MailAction): void {
    this.mail.push(action);
    this.signal();
  }

  get queuedFrames(): number { return this.queue.length - this.queueHead; }

  /** For a stuck checkpoint's report: per channel, frames received, consumed and granted, and whether blocked (alignment). */
  describe(): string {
    return this.channels.map((c, i) => `${c.description} received ${this.nextSequence[i]! - 1} consumed ${this.consumed[i]} granted ${this.granted[i]}${this.blocked[i] ? ` blocked (${this.held[i]!.length} held)` : ""}`).join("; ")
      + (this.queuedFrames > 0 ? `; ${this.queuedFrames} queued` : "") + (this.mail.length > 0 ? `; ${this.mail.length} mail` : "");
  }

  /** The next mail or frame without waiting; mail first (timers and control are not starved by input). */
  poll(): GateItem | undefined {
    if (this.mail.length > 0) return { type: "mail", action: this.mail.shift()! };
    while (this.queueHead < this.queue.length) {
      const [channel, data] = this.queue[this.queueHead]!;
      this.queue[this.queueHead++] = undefined as never;
      if (this.queueHead > 1024 && this.queueHead * 2 > this.queue.length) {
        this.queue.splice(0, this.queueHead);
        this.queueHead = 0;
      }
      if (this.blocked[channel]) { this.held[channel]!.push(data); continue; }
      const frame = decodeFrame(data, this.records);
      const expected = this.nextSequence[channel]!;
      if (frame.k === "p") {
        // A probe (frames.ts): every frame published before it has arrived, or some were lost.
        if (frame.last >= expected) {
          this.onGap(new ChannelGapError(this.channels[channel]!.description, expected, undefined, frame.last));
          this.nextSequence[channel] = frame.last + 1;
        }
        continue;
      }
      this.framesIn++;
      if (frame.q !== expected) this.onGap(new ChannelGapError(this.channels[channel]!.description, expected, frame.q));
      this.nextSequence[channel] = (frame.q ?? expected) + 1;
      return { type: "frame", channel, frame };
    }
    return undefined;
  }

  /** Resolves when mail or a frame may be available, or after `timeoutMs` if given. */
  waitForInput(timeoutMs?: number): Promise<void> {
    if (this.mail.length > 0 || this.queueHead < this.queue.length) return Promise.resolve();
    return new Promise((resolve) => {
      if (timeoutMs === undefined) {
        this.wake = resolve;
        return;
      }
      const timer = setTimeout(() => { if (this.wake === done) this.wake = undefined; resolve(); }, timeoutMs);
      const done = () => { clearTimeout(timer); resolve(); };
      this.wake = done;
    });
  }

  /** The frame from `channel` has been processed: grant more in steps of half the window. */
  ack(channel: number): void {
    const n = ++this.consumed[channel]!;
    if ((n + this.creditWindow - this.granted[channel]!) * 2 >= this.creditWindow) this.grant(channel);
  }

  /** Stop delivering a channel's frames (held in order) until `unblock` (barrier alignment). */
  block(channel: number): void { this.blocked[channel] = true; }

  unblock(channel: number): void {
    this.blocked[channel] = false;
    const held = this.held[channel]!;
    if (held.length === 0) return;
    // Held frames go back to the front, before anything that arrived later on other channels.
    const rest = this.queue.slice(this.queueHead);
    this.queue.length = 0;
    this.queueHead = 0;
    for (const data of held) this.queue.push([channel, data]);
    for (const item of rest) this.queue.push(item);
    this.held[channel] = [];
    this.signal();
  }

  close(): void {
    for (const s of this.subscriptions) s.unsubscribe();
    this.subscriptions.length = 0;
    this.signal();
  }

  /** Wakes a waiting run loop (also used to interrupt it for cancellation). */
  signal(): void {
    const w = this.wake;
    this.wake = undefined;
    w?.();
    this.interrupt?.();
  }

  /** Mail is waiting (read by a source's loop right before it lets its reader wait long). */
  get hasMail(): boolean { return this.mail.length > 0; }

  /** `f` runs at every signal (mail, a stop, closing): a source loop passes its reader's `interrupt`. */
  onSignal(f: (() => void) | undefined): void { this.interrupt = f; }
}
