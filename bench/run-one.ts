// One benchmark in a process of its own, forked by bench/run.ts: a benchmark measured after others in the
// same process inherited their heap and compiled code (the warm-state row read 0.84 after `async` had run
// and 0.95 on its own, 2026-12-05), which a job in its own process does not. Sends its rows to the parent.
import { setFlagsFromString } from "node:v8";
import { launchNatsServer } from "../runtime/internal.ts";
import { formatFigure, ratioOf, type Benchmark, type BenchRow } from "./harness.ts";

const name = process.argv[2];
if (!name || !process.send) {
  console.error("bench/run-one.ts: forked by bench/run.ts with a benchmark's name (npm run bench <name>)");
  process.exit(2);
}
// As `weir run` does (bin/weir.mjs): weir and the baselines run under the same settings (the young
// generation, which V8 reads only at start, by package.json's `bench` script: --max-semi-space-size=32).
const growing = Number(process.env.WEIR_HEAP_GROWING_PERCENT ?? 50);
if (growing > 0) setFlagsFromString(`--heap-growing-percent=${growing}`);
const scale = Number(process.env.WEIR_BENCH_SCALE ?? 1);

const bench = (await import(`./${name}.bench.ts`)).default as Benchmark;
console.log(`\n# ${bench.name}: ${bench.description}`);
const server = await launchNatsServer();
let rows: BenchRow[] = [];
try {
  rows = await bench.run({ url: server.url, serverPid: server.pid, scale, log: (l) => console.log(`  ${l}`) });
  for (const r of rows) {
    console.log(`  ${r.figure}: weir ${formatFigure(r.weir)} ${r.unit}, baseline ${formatFigure(r.baseline)}, ratio ${ratioOf(r)}${r.goal ? ` (goal ${r.goal})` : ""}`);
  }
} finally {
  await server.stop();
}
process.send({ rows }, () => process.exit(0));
