// npm run bench restarts: a keyed count with an exactly-once JetStream sink and continuous input while its
// nats-server is SIGKILLed and restarted (same port and store, down 3 s) 20 times; prints, per restart,
// the time from the server's return to the next new output, then lost and duplicated outputs against the
// reference (every key's counts 1..n once). Runs on a server of its own (the one bench/run.ts starts is
// not restartable). WEIR_BENCH_SCALE scales the number of restarts.
import { RestartableServer } from "../runtime/internal.ts";
import { runWithServerRestarts } from "../tests/helpers/server-restarts.ts";
import type { BenchContext, Benchmark, BenchRow } from "./harness.ts";

const bench: Benchmark = {
  name: "restarts",
  description: "NATS server SIGKILLed and restarted under a keyed exactly-once job: loss, duplicates, time to progress",
  async run(ctx: BenchContext): Promise<BenchRow[]> {
    const restarts = Math.max(1, Math.round(20 * ctx.scale));
    const server = await RestartableServer.start();
    try {
      const r = await runWithServerRestarts({
        server, restarts, downMs: 3000, ratePerSec: 2000, checkpointIntervalMs: 500, waitMs: 60_000,
        log: (l) => { if (!l.startsWith("  [job]") || /lost|failed|restart|recreat|timed out/.test(l)) ctx.log(l); },
      });
      const ms = r.progressMs.filter((x): x is number => x !== undefined).sort((a, b) => a - b);
      const stalled = r.progressMs.length - ms.length;
      ctx.log(`published ${r.published}, outputs ${r.outputs}, lost ${r.lost}, duplicated ${r.duplicated}, job restarts ${r.jobRestarts}, restarts without progress within 60 s: ${stalled}`);
      ctx.log(`time to progress per restart (ms): ${r.progressMs.map((x) => x ?? "none").join(", ")}`);
      const at = (q: number) => ms.length ? ms[Math.min(ms.length - 1, Math.floor(q * ms.length))]! : Number.NaN;
      return [
        { figure: `outputs lost over ${restarts} server restarts`, weir: r.lost, unit: "records", goal: "0" },
        { figure: `outputs duplicated over ${restarts} server restarts`, weir: r.duplicated, unit: "records", goal: "0" },
        { figure: "server back → next new output, median", weir: at(0.5), unit: "ms", goal: "< 5000" },
        { figure: "server back → next new output, slowest", weir: ms.length ? ms[ms.length - 1]! : Number.NaN, unit: "ms", goal: "< 5000" },
        { figure: "restarts with no new output within 60 s", weir: stalled, unit: "restarts", goal: "0" },
      ];
    } finally {
      await server.stop();
    }
  },
};

export default bench;
