// npm run bench [name ...]: runs the named benchmarks (all when none), each on its own fresh nats-server.
import { readdirSync } from "node:fs";
import { setFlagsFromString } from "node:v8";
import { launchNatsServer } from "../runtime/internal.ts";
import type { Benchmark, BenchRow } from "./harness.ts";

const dir = new URL(".", import.meta.url).pathname;
const available = readdirSync(dir).filter((f) => f.endsWith(".bench.ts")).map((f) => f.replace(/\.bench\.ts$/, "")).sort();
const wanted = process.argv.slice(2).filter((a) => !a.startsWith("-"));
const unknown = wanted.filter((w) => !available.includes(w));
if (unknown.length) {
  console.error(`bench: unknown benchmark ${unknown.map((u) => `"${u}"`).join(", ")}; available: ${available.join(", ")}`);
  process.exit(2);
}
// As `weir run` does (bin/weir.mjs): weir and the baselines run under the same settings (the young
// generation, which V8 reads only at start, by package.json's `bench` script: --max-semi-space-size=32).
const growing = Number(process.env.WEIR_HEAP_GROWING_PERCENT ?? 50);
if (growing > 0) setFlagsFromString(`--heap-growing-percent=${growing}`);
const scale = Number(process.env.WEIR_BENCH_SCALE ?? 1);
const fmt = (n: number | undefined) => (n === undefined ? "-" : n >= 100 ? Math.round(n).toLocaleString("en-US") : n.toFixed(2));
const rows: Array<BenchRow & { bench: string }> = [];
for (const name of wanted.length ? wanted : available) {
  const bench = (await import(`./${name}.bench.ts`)).default as Benchmark;
  console.log(`\n# ${bench.name}: ${bench.description}`);
  const server = await launchNatsServer();
  try {
    const result = await bench.run({ url: server.url, serverPid: server.pid, scale, log: (l) => console.log(`  ${l}`) });
    for (const r of result) {
      rows.push({ ...r, bench: bench.name });
      const ratio = r.baseline ? (r.weir / r.baseline).toFixed(2) : "-";
      console.log(`  ${r.figure}: weir ${fmt(r.weir)} ${r.unit}, baseline ${fmt(r.baseline)}, ratio ${ratio}${r.goal ? ` (goal ${r.goal})` : ""}`);
    }
  } finally {
    await server.stop();
  }
}
console.log("\n| bench | figure | weir | baseline | unit | ratio | goal |\n| --- | --- | --- | --- | --- | --- | --- |");
for (const r of rows) {
  const ratio = r.baseline ? (r.weir / r.baseline).toFixed(2) : "-";
  console.log(`| ${r.bench} | ${r.figure} | ${fmt(r.weir)} | ${fmt(r.baseline)} | ${r.unit} | ${ratio} | ${r.goal ?? ""} |`);
}
process.exit(0);
