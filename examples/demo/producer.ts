// The demo's event producer: page views with a skewed page popularity, published to JetStream at a target
// rate with many acks in flight (a microservice would do the same), plus an occasional malformed event.
// It runs in a process of its own (producer-process.ts), as the service emitting the events would: in
// weir's process it would take the job's CPU and make the job look slower than it is.

import type { NatsConnection } from "@nats-io/transport-node";
import { jetstreamManager } from "@nats-io/jetstream";
import { JetStreamPublishPipe } from "../../runtime/nats/publish-pipe.ts";

const PAGES = ["/", "/pricing", "/docs", "/docs/state", "/docs/checkpoints", "/blog", "/blog/weir-1-0", "/careers", "/login", "/signup"];

/** Every this many events, one is malformed on purpose (it goes to the dead letters). */
const MALFORMED_EVERY = 5000;
/** Publishes a pacing step sends at most before it lets acks in. */
const STEP = 500;

export interface ProducerStats {
  /** Well-formed events the stream acknowledged. */
  produced: number;
  /** Malformed events the stream acknowledged. */
  malformed: number;
  /** Publishes that failed (not acknowledged). */
  failed: number;
  /** Publishes sent, acknowledged or not yet. */
  sent: number;
  /** When the first publish went out and the last ack came (performance.now()). */
  startedAt: number;
  lastAckAt: number;
  /** The first failure, in words. */
  firstError?: string;
}

export const newProducerStats = (): ProducerStats => ({ produced: 0, malformed: 0, failed: 0, sent: 0, startedAt: 0, lastAckAt: 0 });

export async function ensureStream(nc: NatsConnection, name: string, subjects: string[]): Promise<void> {
  const jsm = await jetstreamManager(nc);
  try { await jsm.streams.info(name); } catch { await jsm.streams.add({ name, subjects }); }
}

/** The n-th event of the demo (deterministic for a given sequence of calls). */
export class PageViews {
  private seed = 42;
  private n = 0;
  private rand(): number { return (this.seed = (this.seed * 1103515245 + 12345) & 0x7fffffff) / 0x7fffffff; }

  next(): { subject: string; payload: string; malformed: boolean } {
    const n = this.n++;
    if (n > 0 && n % MALFORMED_EVERY === 0) return { subject: "pageviews.web", payload: `{"user": "u${n}", "page": 42, "broken": true}`, malformed: true };
    const page = PAGES[Math.min(PAGES.length - 1, Math.floor(-Math.log(1 - this.rand() * 0.999) * 2.2))]!;
    const user = `user-${Math.floor(this.rand() * 500)}`;
    const subject = `pageviews.${this.rand() < 0.7 ? "web" : "app"}`;
    return { subject, payload: JSON.stringify({ user, page, ts: Date.now(), ms: Math.floor(this.rand() * 3000) }), malformed: false };
  }
}

/**
 * Publishes `ratePerSec` events per second until `signal` aborts, with at most `maxInFlight` acks
 * outstanding (a publish waits for room rather than piling up), then waits for the last acks. Falls
 * behind, rather than bursting, when the server acknowledges slower than the rate: `stats` tells.
 */
export async function producePageViews(nc: NatsConnection, ratePerSec: number, signal: AbortSignal, stats: ProducerStats, maxInFlight = 1024): Promise<void> {
  // A plain publish with a reply subject (publish-pipe.ts) costs the producer's CPU a fraction of
  // nats.js's request machinery; what the server does per message is the same.
  const pipe = new JetStreamPublishPipe(nc);
  const events = new PageViews();
  let inFlight = 0;
  let waiter: { readonly below: number; readonly resolve: () => void } | undefined;
  const fewerThan = (below: number) => new Promise<void>((resolve) => { waiter = { below, resolve }; });
  const settled = () => {
    inFlight--;
    stats.lastAckAt = performance.now();
    if (waiter && inFlight < waiter.below) { const w = waiter; waiter = undefined; w.resolve(); }
  };
  stats.startedAt = performance.now();
  try {
    while (!signal.aborted) {
      const due = Math.floor(((performance.now() - stats.startedAt) / 1000) * ratePerSec) - stats.sent;
      if (due <= 0) { await new Promise((r) => setTimeout(r, 2)); continue; }
      for (let i = 0; i < Math.min(due, STEP) && !signal.aborted; i++) {
        if (inFlight >= maxInFlight) await fewerThan(maxInFlight);
        const e = events.next();
        inFlight++;
        stats.sent++;
        pipe.publish(e.subject, e.payload).then(
          () => { if (e.malformed) stats.malformed++; else stats.produced++; settled(); },
          (err: unknown) => { stats.failed++; stats.firstError ??= err instanceof Error ? err.message : String(err); settled(); },
        );
      }
      // Let the acks of this step in before the next one.
      await new Promise((r) => setImmediate(r));
    }
    if (inFlight > 0) await fewerThan(1);
  } finally {
    pipe.close();
  }
}
