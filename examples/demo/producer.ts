// The demo's event producer: page views with a skewed page popularity, published to JetStream with
// many acks in flight (a microservice would do the same), plus an occasional malformed event.

import type { NatsConnection } from "@nats-io/transport-node";
import { jetstream, jetstreamManager } from "@nats-io/jetstream";

const PAGES = ["/", "/pricing", "/docs", "/docs/state", "/docs/checkpoints", "/blog", "/blog/weir-1-0", "/careers", "/login", "/signup"];

export interface ProducerStats { produced: number; malformed: number }

export async function ensureStream(nc: NatsConnection, name: string, subjects: string[]): Promise<void> {
  const jsm = await jetstreamManager(nc);
  try { await jsm.streams.info(name); } catch { await jsm.streams.add({ name, subjects }); }
}

/** Publishes until `signal` aborts; `ratePerSec` events per second. */
export async function producePageViews(nc: NatsConnection, ratePerSec: number, signal: AbortSignal, stats: ProducerStats): Promise<void> {
  const js = jetstream(nc);
  const started = performance.now();
  let inflight: Promise<unknown>[] = [];
  let seed = 42;
  const rand = () => ((seed = (seed * 1103515245 + 12345) & 0x7fffffff) / 0x7fffffff);
  while (!signal.aborted) {
    const due = Math.floor(((performance.now() - started) / 1000) * ratePerSec) - stats.produced - stats.malformed;
    if (due <= 0) { await new Promise((r) => setTimeout(r, 5)); continue; }
    for (let i = 0; i < Math.min(due, 500); i++) {
      const n = stats.produced + stats.malformed;
      if (n > 0 && n % 5000 === 0) {
        stats.malformed++;
        inflight.push(js.publish("pageviews.web", `{"user": "u${n}", "page": 42, "broken": true}`));
        continue;
      }
      const page = PAGES[Math.min(PAGES.length - 1, Math.floor(-Math.log(1 - rand() * 0.999) * 2.2))]!;
      const user = `user-${Math.floor(rand() * 500)}`;
      inflight.push(js.publish(`pageviews.${rand() < 0.7 ? "web" : "app"}`, JSON.stringify({ user, page, ts: Date.now(), ms: Math.floor(rand() * 3000) })));
      stats.produced++;
      if (inflight.length >= 256) { await Promise.all(inflight); inflight = []; }
    }
  }
  await Promise.all(inflight);
}
