// The demo's event producer: page views with a skewed page popularity, published to JetStream at a target
// rate with many acks in flight (a microservice would do the same), plus an occasional malformed event.
// It runs in a process of its own (producer-process.ts), as the service emitting the events would: in
// weir's process it would take the job's CPU and make the job look slower than it is.

import type { NatsConnection } from "@nats-io/transport-node";
import { jetstreamManager } from "@nats-io/jetstream";
import { JetStreamPublishPipe } from "../../runtime/nats/publish-pipe.ts";
import { publishBatch } from "../../runtime/nats/publish-batch.ts";

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

/** A clean slate for one run: the demo's input, output and dead-letter streams dropped and the first two made again. */
export async function resetDemoStreams(nc: NatsConnection): Promise<void> {
  const jsm = await jetstreamManager(nc);
  for (const s of ["PAGEVIEWS", "PAGE_STATS", "weir_pageviews_dlq"]) await jsm.streams.delete(s).catch(() => {});
  await ensureStream(nc, "PAGEVIEWS", ["pageviews.>"]);
  await ensureStream(nc, "PAGE_STATS", ["stats.>"]);
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
 * outstanding (a step waits for room rather than piling up), then waits for the last acks. Falls
 * behind, rather than bursting, when the server acknowledges slower than the rate: `stats` tells.
 */
export async function producePageViews(nc: NatsConnection, ratePerSec: number, signal: AbortSignal, stats: ProducerStats, maxInFlight = 1024): Promise<void> {
  // Each step is one block of publishes with a reply each (publish-batch.ts): it costs the producer's CPU
  // a fraction of nats.js's request per message, and the machine's other cores go to weir and the server;
  // what the server does per message is the same.
  const pipe = new JetStreamPublishPipe(nc);
  const events = new PageViews();
  let inFlight = 0;
  let waiter: { readonly below: number; readonly resolve: () => void } | undefined;
  const fewerThan = (below: number) => new Promise<void>((resolve) => { waiter = { below, resolve }; });
  const settled = (n: number) => {
    inFlight -= n;
    stats.lastAckAt = performance.now();
    if (waiter && inFlight < waiter.below) { const w = waiter; waiter = undefined; w.resolve(); }
  };
  stats.startedAt = performance.now();
  try {
    while (!signal.aborted) {
      const due = Math.floor(((performance.now() - stats.startedAt) / 1000) * ratePerSec) - stats.sent;
      if (due <= 0) { await new Promise((r) => setTimeout(r, 2)); continue; }
      const n = Math.min(due, STEP);
      if (inFlight + n > maxInFlight) { await fewerThan(maxInFlight - n + 1); continue; }
      const step: Array<readonly [string, string]> = [];
      let malformed = 0;
      for (let i = 0; i < n; i++) {
        const e = events.next();
        if (e.malformed) malformed++;
        step.push([e.subject, e.payload]);
      }
      let failed = 0;
      inFlight += n;
      stats.sent += n;
      void publishBatch(nc, pipe, step, undefined, {
        maxInFlight: n,
        retry: (_s, _p, _id, err) => {
          failed++;
          stats.firstError ??= err.message;
          return Promise.resolve();
        },
      }).then(
        () => { stats.failed += failed; stats.produced += n - malformed - failed; stats.malformed += malformed; settled(n); },
        (err: unknown) => { stats.failed += n; stats.firstError ??= err instanceof Error ? err.message : String(err); settled(n); },
      );
      // Let acks in before the next step.
      await new Promise((r) => setImmediate(r));
    }
    if (inFlight > 0) await fewerThan(1);
  } finally {
    pipe.close();
  }
}
