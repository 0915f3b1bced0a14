// One load run of the demo: the producer process publishes page views at the aimed rate for a while (or
// until stopped) while weir consumes them; then how fast weir kept up, and whether and when it caught up.
// Shared by `weir demo` (run.ts) and bench/demo.bench.ts.

import type { NatsSettings } from "../../runtime/nats/connection-settings.ts";
import { ProducerProcess } from "./producer-child.ts";
import type { ProducerReport } from "./producer-protocol.ts";

export interface LoadOptions {
  readonly settings: NatsSettings;
  readonly ratePerSec: number;
  /** Stops producing when this aborts (Ctrl-C)... */
  readonly stop?: AbortSignal;
  /** ...or this long after the producer started. */
  readonly durationMs?: number;
  /** Records weir has taken in so far (read + dead-lettered); omitted: the producer alone (a baseline). */
  readonly consumed?: () => number;
  /** How long weir may take to catch up after the producer stopped. Default 60 s. */
  readonly catchUpMs?: number;
  /** Called once the producer runs (for a live progress line). */
  readonly onStarted?: (producer: ProducerProcess) => void;
}

export interface LoadResult {
  readonly aimedPerSec: number;
  readonly producer: ProducerReport;
  readonly producerPid: number;
  /** Events in the stream: well-formed and malformed ones acknowledged. */
  readonly published: number;
  /** The rate the producer sustained: what it published over the time it ran. */
  readonly sustainedPerSec: number;
  /** Records weir took in while the producer ran, and that per second of it. */
  readonly consumedWhileProducing: number;
  readonly keptUpPerSec: number;
  /** Records not yet taken in when the producer stopped. */
  readonly behindAtStop: number;
  /** Milliseconds from the producer's stop until weir had taken in everything; undefined: not in time. */
  readonly caughtUpAfterMs: number | undefined;
  /** Records still not taken in at the end (0 when caught up). */
  readonly behindAtEnd: number;
}

export async function runLoad(o: LoadOptions): Promise<LoadResult> {
  const consumed = o.consumed ?? (() => 0);
  const producer = await ProducerProcess.start(o.settings, o.ratePerSec);
  const before = consumed();
  o.onStarted?.(producer);
  let timer: NodeJS.Timeout | undefined;
  await new Promise<void>((resolve) => {
    if (o.stop?.aborted) { resolve(); return; }
    o.stop?.addEventListener("abort", () => resolve(), { once: true });
    if (o.durationMs !== undefined) timer = setTimeout(resolve, o.durationMs);
  });
  clearTimeout(timer);
  const report = await producer.stop();
  const stoppedAt = performance.now();
  const atStop = consumed() - before;
  const published = report.produced + report.malformed;
  let caughtUpAfterMs: number | undefined;
  if (o.consumed) {
    const deadline = stoppedAt + (o.catchUpMs ?? 60_000);
    while (consumed() - before < published && performance.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    if (consumed() - before >= published) caughtUpAfterMs = performance.now() - stoppedAt;
  }
  // Both rates on the producer's clock (its first publish to its last ack): weir's count is read when its
  // final report arrives, a moment after that.
  const producingMs = Math.max(1, report.elapsedMs);
  return {
    aimedPerSec: o.ratePerSec,
    producer: report,
    producerPid: producer.pid,
    published,
    sustainedPerSec: published / Math.max(0.001, report.elapsedMs / 1000),
    consumedWhileProducing: atStop,
    keptUpPerSec: atStop / (producingMs / 1000),
    behindAtStop: Math.max(0, published - atStop),
    caughtUpAfterMs,
    behindAtEnd: o.consumed ? Math.max(0, published - (consumed() - before)) : 0,
  };
}
