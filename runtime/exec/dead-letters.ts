// Dead letters: malformed input is published to `weir.<job>.dlq` with the reason, captured by a
// JetStream stream (created on first use) so nothing is lost even when nobody is subscribed.

import type { NatsConnection } from "@nats-io/transport-node";
import { jetstream, jetstreamManager } from "@nats-io/jetstream";
import type { DeadLetter, DeadLetters } from "../api/connectors.ts";
import type { JobNames } from "../names.ts";
import { ensureStream } from "../nats/streams.ts";

const decoder = new TextDecoder("utf-8", { fatal: true });

export function encodeDeadLetter(letter: DeadLetter): string {
  let data: string;
  let encoding: "utf8" | "base64" = "utf8";
  if (typeof letter.data === "string") data = letter.data;
  else {
    try { data = decoder.decode(letter.data); } catch {
      data = Buffer.from(letter.data).toString("base64");
      encoding = "base64";
    }
  }
  return JSON.stringify({
    reason: letter.reason,
    origin: letter.origin,
    ...(letter.subject !== undefined ? { subject: letter.subject } : {}),
    ...(letter.sequence !== undefined ? { sequence: letter.sequence } : {}),
    ...(letter.line !== undefined ? { line: letter.line } : {}),
    data,
    encoding,
    at: new Date().toISOString(),
  });
}

/** One per job; each subtask counts its own letters through `forSubtask`. */
export class DeadLetterPublisher {
  private ready: Promise<void> | undefined;
  private readonly inflight = new Set<Promise<unknown>>();
  total = 0;

  constructor(private readonly nc: NatsConnection, private readonly names: JobNames, private readonly log: (m: string) => void) {}

  /** The stream that keeps dead letters: `weir_<job>_dlq`. */
  get streamName(): string { return `weir_${this.names.job}_dlq`; }

  private ensureStream(): Promise<void> {
    return (this.ready ??= (async () => {
      await ensureStream(await jetstreamManager(this.nc), { name: this.streamName, subjects: [this.names.dlq] });
    })());
  }

  publish(letter: DeadLetter): void {
    this.total++;
    const payload = encodeDeadLetter(letter);
    const p = this.ensureStream()
      .then(() => jetstream(this.nc).publish(this.names.dlq, payload))
      .catch((e: Error) => {
        // Core publish as a last resort: subscribers still see it; the reason is logged.
        this.nc.publish(this.names.dlq, payload);
        this.log(`dead letter could not be stored in ${this.streamName}: ${e.message}`);
      })
      .finally(() => this.inflight.delete(p));
    this.inflight.add(p);
  }

  forSubtask(): DeadLetters {
    let count = 0;
    return {
      publish: (letter) => { count++; this.publish(letter); },
      get count() { return count; },
    };
  }

  async flush(): Promise<void> {
    while (this.inflight.size > 0) await Promise.all([...this.inflight]);
  }
}
