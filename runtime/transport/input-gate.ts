// The consumer end of a subtask's channels: one subscription per channel, frames queued in arrival
// order, and credits returned to the producer as frames are consumed. A producer never has more than
// `creditWindow` frames outstanding per channel, so the queue here is bounded without dropping anything.
// The gate also carries the subtask's mailbox (timers, control), so the run loop waits on one thing.

import type { NatsConnection, Subscription } from "@nats-io/transport-node";
import { decodeFrame, type Frame } from "./frames.ts";

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

export class InputGate {
  private readonly queue: Array<[channel: number, data: Uint8Array]> = [];
  private queueHead = 0;
  private readonly mail: MailAction[] = [];
  private wake: (() => void) | undefined;
  private readonly consumed: number[];
  private readonly subscriptions: Subscription[] = [];
  private readonly blocked: boolean[];
  /** Frames held back from blocked channels (barrier alignment, issue 5), per channel, in order. */
  private readonly held: Array<Array<Uint8Array>>;
  framesIn = 0;
  /** The frame size asked of producers with each credit (" r<records>"), when debloating. */
  private frameHint = "";

  constructor(
    private readonly nc: NatsConnection,
    readonly channels: readonly InputChannelSpec[],
    private readonly creditWindow: number,
  ) {
    this.consumed = channels.map(() => 0);
    this.blocked = channels.map(() => false);
    this.held = channels.map(() => []);
  }

  /** Subscribes to every channel. Call before any producer may publish (then flush the connection). */
  subscribe(): void {
    this.channels.forEach((c, i) => {
      this.subscriptions.push(this.nc.subscribe(c.subject, {
        callback: (err, msg) => {
          if (err) return;
          this.queue.push([i, msg.data]);
          this.signal();
        },
      }));
    });
  }

  /** Grants every producer its initial window. */
  start(): void {
    this.channels.forEach((c) => this.nc.publish(c.creditSubject, `${c.creditTag} ${this.creditWindow}${this.frameHint}`));
  }

  /**
   * Asks producers for frames of at most `records` records (buffer debloating): sent with every credit
   * from now on, and announced at once (with no credit) once the gate has started.
   */
  setRecordsPerFrame(records: number, announce: boolean): void {
    this.frameHint = ` r${records}`;
    if (announce) for (const c of this.channels) this.nc.publish(c.creditSubject, `${c.creditTag} 0${this.frameHint}`);
  }

  enqueue(action: MailAction): void {
    this.mail.push(action);
    this.signal();
  }

  get queuedFrames(): number { return this.queue.length - this.queueHead; }

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
      this.framesIn++;
      return { type: "frame", channel, frame: decodeFrame(data) };
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

  /** The frame from `channel` has been processed: return credit in batches of half the window. */
  ack(channel: number): void {
    const n = ++this.consumed[channel]!;
    if (n * 2 >= this.creditWindow) {
      this.consumed[channel] = 0;
      const c = this.channels[channel]!;
      this.nc.publish(c.creditSubject, `${c.creditTag} ${n}${this.frameHint}`);
    }
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
  }
}
