// npm run bench fence: the state write fence (actors/worker/state-write-fence.ts) under its worst case, a
// follower frozen in the middle of a materialization and thawed after the leader rewrote its keys
// (tests/helpers/frozen-materialization.ts), five times: keys whose state a write of the thawed worker set
// back, and its KV writes after the thaw. What the fence cannot hold, writes sent before the freeze that
// the server applies only after the thaw (at most the writes in flight), the server refuses: a worker's KV
// writes are conditional (state/backends/jetstream-kv/remote-values.ts). WEIR_BENCH_SCALE scales the runs.
import { runFrozenMaterialization, KEYS } from "../tests/helpers/frozen-materialization.ts";
import type { BenchContext, Benchmark, BenchRow } from "./harness.ts";

const bench: Benchmark = {
  name: "fence",
  description: "a follower frozen mid-materialization and thawed: keys its late writes set back",
  async run(ctx: BenchContext): Promise<BenchRow[]> {
    const runs = Math.max(1, Math.round(5 * ctx.scale));
    const regressed: number[] = [];
    const late: number[] = [];
    let conflicts = 0;
    for (let i = 0; i < runs; i++) {
      const r = await runFrozenMaterialization(ctx.url);
      ctx.log(`run ${i + 1}: ${r.regressedKeys} of ${KEYS} keys set back; KV writes before the freeze ${r.writesBeforeFreeze}, by the leader meanwhile ${r.writesWhileFrozen}, in the 700 ms after the thaw ${r.writesAfterThaw}; the thawed worker ${r.conflictReported ? "reported" : "did not report"} a write refused as a conflict`);
      if (r.conflictReported) conflicts++;
      regressed.push(r.regressedKeys);
      late.push(r.writesAfterThaw);
    }
    return [
      { figure: `keys set back by a thawed follower's late writes, most in ${runs} runs (of ${KEYS})`, weir: Math.max(...regressed), unit: "keys", goal: "0" },
      { figure: `runs with any key set back (of ${runs})`, weir: regressed.filter((n) => n > 0).length, unit: "runs", goal: "0" },
      { figure: "KV writes in the 700 ms after the thaw, most in a run", weir: Math.max(...late), unit: "writes" },
      { figure: `runs whose thawed worker had a late write refused as a conflict (of ${runs})`, weir: conflicts, unit: "runs" },
    ];
  },
};

export default bench;
