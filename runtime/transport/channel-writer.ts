// The producer end of one channel: records accumulate into a frame that is sealed when full (or when the
// subtask goes idle, or before control), and a sealed frame is published only against a credit granted by
// the consumer. Frames without credit wait here, and the subtask stops taking input while any do: that is
// how a slow consumer backpressures its producers instead of being dropped by core NATS.

import type { NatsConnection } from "@nats-io/transport-node";
import { encodeControl, encodeRecords, type Frame } from "./frames.ts";

export class ChannelWriter {
  private values: unknown[] = [];
  private timestamps: Array<number | undefined> | undefined;
  private readonly pending: string[] = [];
  private credits = 0;
  /** Records per frame: the frame size, or less when the consumer asks for smaller frames (debloating). */
  private limit: number;
  framesSent = 0;
  recordsSent = 0;
  bytesSent = 0;

  constructor(
    private readonly nc: NatsConnection,
    readonly subject: string,
    private readonly frameSize: number,
    private readonly maxPayload: number,
    private readonly onDrained: () => void,
  ) {
    this.limit = frameSize;
  }

  /** Frames waiting for credit. */
  get backlog(): number { return this.pending.length; }
  get bufferedRecords(): number { return this.values.length; }
  /**
   * Records this channel takes before a frame waits for credit (buffer debloating): its credits' worth,
   * and at least the rest of the open frame (filling it costs no wait until it is sealed).
   */
  get sendableRecords(): number {
    return this.pending.length > 0 ? 0 : Math.max(1, this.credits) * this.limit - this.values.length;
  }

  add(value: unknown, timestamp: number | undefined): void {
    const n = this.values.push(value);
    if (timestamp !== undefined) {
      this.timestamps ??= new Array<number | undefined>(n - 1);
      this.timestamps[n - 1] = timestamp;
    } else if (this.timestamps) this.timestamps[n - 1] = undefined;
    if (n >= this.limit) this.seal();
  }

  /** Closes the current frame (if any records are in it) and queues it. */
  seal(): void {
    if (this.values.length === 0) return;
    const values = this.values;
    const timestamps = this.timestamps;
    this.values = [];
    this.timestamps = undefined;
    this.recordsSent += values.length;
    this.enqueueRecords(values, timestamps);
  }

  control(frame: Exclude<Frame, { k: "r" }>): void {
    this.seal();
    this.enqueue(encodeControl(frame));
  }

  /** `maxRecordsPerFrame`: the consumer's frame size hint (buffer-debloater.ts), if it sent one. */
  grant(credits: number, maxRecordsPerFrame?: number): void {
    if (maxRecordsPerFrame !== undefined && maxRecordsPerFrame >= 1) this.limit = Math.min(this.frameSize, maxRecordsPerFrame);
    this.credits += credits;
    this.drain();
  }

  private enqueueRecords(values: unknown[], timestamps: Array<number | undefined> | undefined): void {
    const payload = encodeRecords(values, timestamps);
    // A frame over the server's max payload is split in halves until each part fits.
    if (payload.length * 3 > this.maxPayload && Buffer.byteLength(payload) > this.maxPayload) {
      if (values.length === 1) throw new Error(`a record of ${Buffer.byteLength(payload)} bytes exceeds the server's max payload (${this.maxPayload})`);
      const mid = values.length >> 1;
      this.enqueueRecords(values.slice(0, mid), timestamps?.slice(0, mid));
      this.enqueueRecords(values.slice(mid), timestamps?.slice(mid));
      return;
    }
    this.enqueue(payload);
  }

  private enqueue(payload: string): void {
    if (this.credits > 0 && this.pending.length === 0) this.publish(payload);
    else this.pending.push(payload);
  }

  private drain(): void {
    if (this.pending.length === 0) return;
    let i = 0;
    while (this.credits > 0 && i < this.pending.length) this.publish(this.pending[i++]!);
    this.pending.splice(0, i);
    if (this.pending.length === 0) this.onDrained();
  }

  private publish(payload: string): void {
    this.credits--;
    this.framesSent++;
    this.bytesSent += payload.length;
    this.nc.publish(this.subject, payload);
  }
}
