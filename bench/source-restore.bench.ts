// `npm run bench source-restore`: a JetStream source lane restored shortly behind its stream's head, as a
// job restored from a recent checkpoint is. On nats-server 2.9.10 a filtered consumer created in the first
// half of the stream's last file block scans that block for every message it delivers (catch-up.ts);
// weir's lane reads that stretch unfiltered and then goes on filtered. Baseline: the same lane with a
// filtered consumer from the start (what weir did before, and what a hand-written consumer gets). Both
// read the same range to the same end (a bounded lane), in this run, on the same stream.
import { connect } from "@nats-io/transport-node";
import { jetstream, jetstreamManager, type JsMsg } from "@nats-io/jetstream";
import { ConsumerLane, type LaneConfig } from "../runtime/sources/jetstream-lane.ts";
import { serverScansPendingPerMessage } from "../runtime/sources/catch-up.ts";
import { rate, type BenchContext, type Benchmark } from "./harness.ts";

const STREAM = "RESTORE";

async function readToEnd(config: LaneConfig): Promise<{ count: number; ms: number }> {
  const t0 = performance.now();
  const lane = await ConsumerLane.open(config);
  const out: JsMsg[] = [];
  try {
    const deadline = Date.now() + 600_000;
    while (!lane.done) {
      if (Date.now() > deadline) throw new Error("source-restore: the lane did not reach its end within 10 minutes");
      lane.drain(out);
      await new Promise((r) => setTimeout(r, 2));
    }
    return { count: out.length, ms: performance.now() - t0 };
  } finally {
    await lane.close();
  }
}

const bench: Benchmark = {
  name: "source-restore",
  description: "a JetStream source lane restored shortly behind the head (two subjects, one read): weir's catch-up vs a filtered consumer",
  async run(ctx: BenchContext) {
    const nc = await connect({ servers: ctx.url });
    try {
      const jsm = await jetstreamManager(nc);
      const js = jetstream(nc);
      await jsm.streams.add({ name: STREAM, subjects: [`${STREAM}.*`] });
      const total = Math.round(20_000 * ctx.scale);
      const body = JSON.stringify({ id: 123456, key: "k12", page: "/products/42" });
      for (let i = 0; i < total; i += 1000) {
        await Promise.all(Array.from({ length: Math.min(1000, total - i) }, (_, k) => js.publish(`${STREAM}.${(i + k) % 2 ? "a" : "b"}`, body)));
      }
      const info = await jsm.streams.info(STREAM);
      const version = nc.info?.version;
      ctx.log(`nats-server ${version}: ${serverScansPendingPerMessage(version) ? "has" : "does not have"} the per-message pending scan`);
      const resumeAfter = Math.round(total / 10);
      const config = (catchUp: boolean): LaneConfig => ({
        js, stream: STREAM, filter: `${STREAM}.a`, namePrefix: `restore_${catchUp ? "weir" : "filtered"}`, startAt: "first", resumeAfter,
        bounded: true, maxMessages: 1000, highWater: 4000, wake: () => {}, log: ctx.log, stallMs: 3000,
        ...(catchUp ? { catchUpHead: { lastSeq: info.state.last_seq, bytesPerMessage: info.state.bytes / info.state.messages } } : {}),
      });
      const weir = await readToEnd(config(true));
      const filtered = await readToEnd(config(false));
      if (weir.count !== filtered.count) throw new Error(`source-restore: weir read ${weir.count} messages, the filtered consumer ${filtered.count}`);
      ctx.log(`${weir.count} messages of one subject after sequence ${resumeAfter} of ${total}: weir ${Math.round(weir.ms)} ms, filtered ${Math.round(filtered.ms)} ms`);
      return [{ figure: `restored lane, ${weir.count} messages from the first half of the last block`, weir: rate(weir.count, weir.ms), baseline: rate(filtered.count, filtered.ms), unit: "msgs/s" }];
    } finally {
      await nc.close();
    }
  },
};
export default bench;
