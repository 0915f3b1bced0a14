// Small JetStream helpers for tests: fill a stream, read one back whole.
import type { NatsConnection } from "@nats-io/transport-node";
import { jetstream, jetstreamManager } from "@nats-io/jetstream";

export async function createStream(nc: NatsConnection, name: string, subjects: string[]): Promise<void> {
  const jsm = await jetstreamManager(nc);
  await jsm.streams.add({ name, subjects });
}

export async function publishAll(nc: NatsConnection, items: Array<[subject: string, payload: unknown]>): Promise<void> {
  const js = jetstream(nc);
  let inflight: Promise<unknown>[] = [];
  for (const [subject, payload] of items) {
    inflight.push(js.publish(subject, typeof payload === "string" ? payload : JSON.stringify(payload)));
    if (inflight.length >= 500) { await Promise.all(inflight); inflight = []; }
  }
  await Promise.all(inflight);
}

/** Every message of `stream`, parsed as JSON, in stream order. */
export async function readStream<T>(nc: NatsConnection, stream: string): Promise<T[]> {
  const jsm = await jetstreamManager(nc);
  const info = await jsm.streams.info(stream).catch(() => undefined);
  if (!info || info.state.messages === 0) return [];
  const out: T[] = [];
  const consumer = await jetstream(nc).consumers.get(stream);
  const messages = await consumer.consume({ max_messages: 1000 });
  for await (const m of messages) {
    out.push(m.json<T>());
    if (m.info.pending === 0) break;
  }
  await messages.close();
  return out;
}

/** Ascending `ids` as ranges ("3", "5-9"): runs of ids `step` apart (a subject's ids are 4 apart when ids go round 4 subjects). */
export function idRanges(ids: readonly number[], step = 1): string[] {
  const ranges: string[] = [];
  for (let i = 0; i < ids.length;) {
    let j = i;
    while (j + 1 < ids.length && ids[j + 1] === ids[j]! + step) j++;
    ranges.push(i === j ? `${ids[i]}` : `${ids[i]}-${ids[j]}`);
    i = j + 1;
  }
  return ranges;
}
