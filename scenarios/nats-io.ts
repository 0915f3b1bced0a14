// What the runner reads from and writes to its NATS server: stream contents, message counts, control
// requests to the running job, and publishing (JetStream when a stream captures the subject, else core).

import type { NatsConnection } from "@nats-io/transport-node";
import { jetstream, jetstreamManager, type JetStreamClient, type JetStreamManager } from "@nats-io/jetstream";
import type { JobStatus } from "../actors/job/job-runner.ts";
import { requestControl } from "../actors/job/control-client.ts";
import { ControlVerb, type ControlReply, type ControlRequest } from "../actors/job/control-protocol.ts";
import { messageOf } from "../runtime/core/errors.ts";

export interface StoredMessage {
  readonly subject: string;
  readonly seq: number;
  /** The payload parsed as JSON, or the text when it is not JSON. */
  readonly value: unknown;
}

export class ScenarioNats {
  readonly js: JetStreamClient;
  private jsmP: Promise<JetStreamManager> | undefined;

  constructor(readonly nc: NatsConnection) {
    this.js = jetstream(nc);
  }

  jsm(): Promise<JetStreamManager> { return (this.jsmP ??= jetstreamManager(this.nc)); }

  /** The stream that captures `subject`, or undefined (none does, or the server has no JetStream). */
  async streamFor(subject: string): Promise<string | undefined> {
    try {
      return await (await this.jsm()).streams.find(subject);
    } catch {
      return undefined;
    }
  }

  async addStream(name: string, subjects: string[], duplicateWindowMs?: number): Promise<void> {
    const jsm = await this.jsm();
    await jsm.streams.add({ name, subjects, ...(duplicateWindowMs ? { duplicate_window: duplicateWindowMs * 1_000_000 } : {}) });
  }

  /** Messages in `stream` (on `subject` when given); undefined when the stream does not exist. */
  async count(stream: string, subject?: string): Promise<number | undefined> {
    const jsm = await this.jsm();
    try {
      if (subject === undefined) return (await jsm.streams.info(stream)).state.messages;
      const info = await jsm.streams.info(stream, { subjects_filter: subject });
      return Object.values(info.state.subjects ?? {}).reduce((n, c) => n + c, 0);
    } catch (e) {
      if (/stream not found/i.test(messageOf(e))) return undefined;
      throw e;
    }
  }

  /** Every message of `stream` (on `subject` when given), in stream order; [] when it does not exist. */
  async read(stream: string, subject?: string): Promise<StoredMessage[]> {
    const total = await this.count(stream, subject);
    if (!total) return [];
    const consumer = await this.js.consumers.get(stream, subject ? { filter_subjects: subject } : {});
    const out: StoredMessage[] = [];
    const decoder = new TextDecoder();
    try {
      while (out.length < total) {
        const before = out.length;
        const batch = await consumer.fetch({ max_messages: Math.min(1000, total - out.length), expires: 1000 });
        for await (const m of batch) {
          const text = decoder.decode(m.data);
          let value: unknown = text;
          try { value = JSON.parse(text); } catch { /* not JSON: keep the text */ }
          out.push({ subject: m.subject, seq: m.seq, value });
        }
        if (out.length === before) break;
      }
    } finally {
      await consumer.delete().catch(() => {});
    }
    return out;
  }

  /** A control request to a running job (control-protocol.ts); undefined when nobody answers. */
  control<V extends ControlVerb>(job: string, verb: V, body: ControlRequest<V>, timeoutMs = 1000): Promise<ControlReply<V> | undefined> {
    return requestControl(this.nc, job, verb, body, timeoutMs);
  }

  status(job: string): Promise<JobStatus | undefined> {
    return this.control(job, ControlVerb.Status, {});
  }
}
