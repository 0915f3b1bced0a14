// The demo's producer as a process of its own: `node --import tsx producer-process.ts`, started by the
// demo (producer-child.ts) with an IPC channel. It connects with the settings the demo sends, publishes
// page views at the rate asked until told to stop (or the demo goes away), reports its counts every
// 250 ms and once at the end, then exits.

import { connectNats } from "../../runtime/nats/connect.ts";
import { newProducerStats, producePageViews, type ProducerStats } from "./producer.ts";
import type { FromProducer, ProducerReport, ToProducer } from "./producer-protocol.ts";

const REPORT_EVERY_MS = 250;

const send = (m: FromProducer) => new Promise<void>((resolve) => {
  if (!process.send || !process.connected) { resolve(); return; }
  process.send(m, () => resolve());
});

const report = (s: ProducerStats): ProducerReport => ({
  produced: s.produced,
  malformed: s.malformed,
  failed: s.failed,
  elapsedMs: s.startedAt === 0 ? 0 : Math.max(s.lastAckAt, s.startedAt) - s.startedAt,
  cpuMs: (({ user, system }) => (user + system) / 1000)(process.cpuUsage()),
  ...(s.firstError !== undefined ? { firstError: s.firstError } : {}),
});

async function run(start: Extract<ToProducer, { type: "start" }>, stop: AbortSignal): Promise<void> {
  const nc = await connectNats(start.settings, "weir-demo-producer");
  const stats = newProducerStats();
  const ticker = setInterval(() => void send({ type: "progress", report: report(stats) }), REPORT_EVERY_MS);
  try {
    await send({ type: "started" });
    await producePageViews(nc, start.ratePerSec, stop, stats);
  } finally {
    clearInterval(ticker);
    await nc.close().catch(() => {});
  }
  await send({ type: "done", report: report(stats) });
}

if (!process.send) {
  process.stderr.write("producer-process.ts: start it from the demo (it needs an IPC channel)\n");
  process.exit(2);
}
const stop = new AbortController();
process.on("disconnect", () => stop.abort()); // the demo went away: stop too
// Ctrl-C reaches the whole process group: the demo stops us (and reads our last report) instead.
process.on("SIGINT", () => {});
process.on("SIGTERM", () => stop.abort());
process.on("message", (m: ToProducer) => {
  if (m.type === "stop") { stop.abort(); return; }
  if (m.type !== "start") return;
  run(m, stop.signal).then(
    () => process.exit(0),
    async (e: unknown) => {
      await send({ type: "error", message: e instanceof Error ? e.message : String(e) });
      process.exit(1);
    },
  );
});
void send({ type: "listening" });
