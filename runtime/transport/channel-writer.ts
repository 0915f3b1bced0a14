// The producer end of one channel: records accumulate into a frame that is sealed when full (or when the
// subtask goes idle, or before control), and a sealed frame is published only against a credit granted by
// the consumer. Frames without credit wait here, and the subtask stops taking input while any do: that is
// how a slow consumer backpressures its producers instead of being dropped by core NATS. Records that
// arrive while no frame could be published wait unsealed and are cut into frames when credit comes, at
// the size the consumer asks for then: a consumer's first grant asks for small frames (it has measured
// nothing yet), and a producer that emits a burst before the next grant can reach it (a sorted backlog's
// drain) sent its whole burst in frames of 4 records.
// Frames carry their number on the channel (1, 2, ...) so the consumer detects a lost one; a credit grant
// is cumulative (publish up to frame N), so a lost grant is made good by the next one.
// After a reconnect the writer probes its channel and holds new frames until the consumer is heard from:
// core NATS drops what is published to a subject nobody is subscribed to, and the consumer's process may
// reconnect later than this one (tests/workers-disconnect.test.ts met that: a frame lost, a restart).

import type { NatsConnection } from "@nats-io/transport-node";
import { encodeControl, encodeProbe, encodeRecords, withSequence, type Frame, type FrameKind } from "./frames.ts";

/**
 * The longest a writer holds its frames after a reconnect for want of a word from the consumer; then it
 * sends them anyway (a lost one is a gap the consumer finds, and the job restarts from its checkpoint).
 */
export const RECONNECT_HOLD_MS = 5000;

export class ChannelWriter {
  private values: unknown[] = [];
  private timestamps: Array<number | undefined> | undefined;
  private readonly pending: string[] = [];
  /** Frames published on this channel, the last one's number. */
  private sequence = 0;
  /** The consumer's cumulative grant: frames up to this number may be published. */
  private limit = 0;
  /** Records per frame: the frame size, or less when the consumer asks for smaller frames (debloating). */
  private recordsPerFrame: number;
  /** Since a reconnect's probe: frames wait until the consumer answers it (or a grant shows it is back). */
  private holding: NodeJS.Timeout | undefined;
  framesSent = 0;
  recordsSent = 0;
  bytesSent = 0;

  constructor(
    private readonly nc: NatsConnection,
    readonly subject: string,
    private readonly frameSize: number,
    private readonly maxPayload: number,
    private readonly onDrained: () => void,
    /** A record that cannot travel (too deep or too large to encode): the subtask dead-letters it. */
    private readonly onUnencodable: (value: unknown, reason: string) => void = (_v, reason) => { throw new Error(reason); },
  ) {
    this.recordsPerFrame = frameSize;
  }

  /** For a stuck checkpoint's report: frames sent, the grant, and frames waiting for credit. */
  describe(): string {
    return `${this.subject} sent ${this.sequence} of ${this.limit} granted, ${this.pending.length} waiting${this.holding !== undefined ? " (held since a reconnect: no word from the consumer yet)" : ""}`;
  }

  /** Frames waiting for credit: sealed ones, and the full frames' worth of records waiting unsealed. */
  get backlog(): number { return this.pending.length + Math.floor(this.values.length / this.recordsPerFrame); }
  get bufferedRecords(): number { return this.values.length; }

  /**
   * Records this channel takes before a frame waits for credit (buffer debloating): its credits' worth,
   * and at least the rest of the open frame (filling it costs no wait until it is sealed).
   */
  get sendableRecords(): number {
    return this.backlog > 0 ? 0 : Math.max(1, this.limit - this.sequence) * this.recordsPerFrame - this.values.length;
  }

  add(value: unknown, timestamp: number | undefined): void {
    const n = this.values.push(value);
    if (timestamp !== undefined) {
      this.timestamps ??= new Array<number | undefined>(n - 1);
      this.timestamps[n - 1] = timestamp;
    } else if (this.timestamps) this.timestamps[n - 1] = undefined;
    if (n >= this.recordsPerFrame && this.canPublish) this.seal();
  }

  /** A frame sealed now would be published at once. */
  private get canPublish(): boolean {
    return this.sequence < this.limit && this.pending.length === 0 && this.holding === undefined;
  }

  /** Closes the current frame (if any records are in it) and queues it: as frames of the current size. */
  seal(): void {
    if (this.values.length === 0) return;
    const values = this.values;
    const timestamps = this.timestamps;
    this.values = [];
    this.timestamps = undefined;
    this.recordsSent += values.length;
    const size = this.recordsPerFrame;
    if (values.length <= size) this.enqueueRecords(values, timestamps);
    else for (let i = 0; i < values.length; i += size) this.enqueueRecords(values.slice(i, i + size), timestamps?.slice(i, i + size));
  }

  /** Seals the unsealed records' full frames while they can be published at once (credit came). */
  private sealFullFrames(): void {
    const size = this.recordsPerFrame;
    let taken = 0;
    while (this.values.length - taken >= size && this.canPublish) {
      this.recordsSent += size;
      this.enqueueRecords(this.values.slice(taken, taken + size), this.timestamps?.slice(taken, taken + size));
      taken += size;
    }
    if (taken === 0) return;
    this.values = this.values.slice(taken);
    if (this.timestamps) this.timestamps = this.timestamps.slice(taken);
  }

  control(frame: Exclude<Frame, { k: typeof FrameKind.Records }>): void {
    this.seal();
    this.enqueue(encodeControl(frame));
  }

  /**
   * After a reconnect: tells the consumer the last frame published, so that it finds any lost (frames.ts
   * ProbeFrame), and holds further frames until the consumer answers (input-gate.ts grants in reply to a
   * probe, and again after its own reconnect): until then it may not be subscribed again.
   */
  probe(): void {
    this.sendProbe();
    if (this.holding !== undefined) return;
    this.holding = setTimeout(() => this.release(), RECONNECT_HOLD_MS);
    this.holding.unref?.();
  }

  /** Frames are held after a reconnect (see probe). */
  get held(): boolean { return this.holding !== undefined; }

  /**
   * The consumer was heard from (or the hold timed out): probe once more, since the first probe may have
   * come before the consumer subscribed again, then send what waited.
   */
  private release(waited = this.backlog > 0): void {
    if (this.holding === undefined) return;
    clearTimeout(this.holding);
    this.holding = undefined;
    this.sendProbe();
    this.drain(waited);
  }

  /** Outside the numbering and without credit (frames.ts ProbeFrame). */
  private sendProbe(): void {
    this.nc.publish(this.subject, encodeProbe(this.sequence));
  }

  /**
   * The consumer allows frames up to number `limit` (grants only grow; a stale or repeated one changes
   * nothing, but ends a hold: the consumer is there) of at most `maxRecordsPerFrame` records
   * (buffer-debloater.ts), if it sent a size.
   */
  grant(limit: number, maxRecordsPerFrame?: number): void {
    // Whether frames waited, as counted before the size changes (a loop waits for the drained call).
    const waited = this.backlog > 0;
    if (maxRecordsPerFrame !== undefined && maxRecordsPerFrame >= 1) this.recordsPerFrame = Math.min(this.frameSize, maxRecordsPerFrame);
    if (limit > this.limit) this.limit = limit;
    if (this.holding !== undefined) this.release(waited);
    // Also when only the size changed: records waiting unsealed may make frames of it now.
    else this.drain(waited);
  }

  private enqueueRecords(values: unknown[], timestamps: Array<number | undefined> | undefined): void {
    let payload: string;
    try {
      payload = encodeRecords(values, timestamps);
    } catch (e) {
      // JSON.stringify throws on a record nested beyond ~4,000 levels (RangeError), a cycle or a bigint.
      // Only now, off the record path, halve the frame until the offending records are alone.
      if (values.length === 1) {
        this.recordsSent--;
        this.onUnencodable(values[0], `record cannot be encoded for the next subtask: ${e instanceof Error ? `${e.name}: ${e.message}` : String(e)}`);
        return;
      }
      this.enqueueHalves(values, timestamps);
      return;
    }
    // A frame over the server's max payload is split in halves until each part fits.
    if (payload.length * 3 > this.maxPayload && Buffer.byteLength(payload) > this.maxPayload) {
      if (values.length === 1) {
        this.recordsSent--;
        this.onUnencodable(values[0], `a record of ${Buffer.byteLength(payload)} bytes exceeds the server's max payload (${this.maxPayload})`);
        return;
      }
      this.enqueueHalves(values, timestamps);
      return;
    }
    this.enqueue(payload);
  }

  private enqueueHalves(values: unknown[], timestamps: Array<number | undefined> | undefined): void {
    const mid = values.length >> 1;
    this.enqueueRecords(values.slice(0, mid), timestamps?.slice(0, mid));
    this.enqueueRecords(values.slice(mid), timestamps?.slice(mid));
  }

  private enqueue(payload: string): void {
    if (this.sequence < this.limit && this.pending.length === 0 && this.holding === undefined) this.publish(payload);
    else this.pending.push(payload);
  }

  private drain(waited: boolean): void {
    if (this.holding !== undefined) return;
    let i = 0;
    while (this.sequence < this.limit && i < this.pending.length) this.publish(this.pending[i++]!);
    this.pending.splice(0, i);
    this.sealFullFrames();
    // Told also when frames waited that the grant's size made none (records unsealed below the new size).
    if (waited && this.backlog === 0) this.onDrained();
  }

  private publish(payload: string): void {
    this.framesSent++;
    this.bytesSent += payload.length;
    this.nc.publish(this.subject, withSequence(payload, ++this.sequence));
  }
}
