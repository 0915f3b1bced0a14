// npm run bench [name ...]: runs the named benchmarks (all when none), one after another, each in a
// process of its own (bench/run-one.ts, with this process's node flags) on its own fresh nats-server;
// then the table of every row.
import { fork } from "node:child_process";
import { readdirSync } from "node:fs";
import { formatFigure, ratioOf, type BenchRow } from "./harness.ts";

const dir = new URL(".", import.meta.url).pathname;
const available = readdirSync(dir).filter((f) => f.endsWith(".bench.ts")).map((f) => f.replace(/\.bench\.ts$/, "")).sort();
const wanted = process.argv.slice(2).filter((a) => !a.startsWith("-"));
const unknown = wanted.filter((w) => !available.includes(w));
if (unknown.length) {
  console.error(`bench: unknown benchmark ${unknown.map((u) => `"${u}"`).join(", ")}; available: ${available.join(", ")}`);
  process.exit(2);
}

/** Runs benchmark `name` in a child process; its rows (a benchmark that fails prints why and gives none). */
function runOne(name: string): Promise<BenchRow[]> {
  return new Promise((resolve) => {
    const child = fork(new URL("./run-one.ts", import.meta.url).pathname, [name], { execArgv: process.execArgv, stdio: "inherit" });
    let rows: BenchRow[] | undefined;
    child.on("message", (m) => { rows = (m as { rows: BenchRow[] }).rows; });
    child.on("exit", (code, signal) => {
      if (rows === undefined) console.error(`bench ${name}: failed (exit ${code ?? signal}); its rows are missing from the table`);
      resolve(rows ?? []);
    });
  });
}

const rows: Array<BenchRow & { bench: string }> = [];
let failed = 0;
for (const name of wanted.length ? wanted : available) {
  const result = await runOne(name);
  if (result.length === 0) failed++;
  rows.push(...result.map((r) => ({ ...r, bench: name })));
}
console.log("\n| bench | figure | weir | baseline | unit | ratio | goal |\n| --- | --- | --- | --- | --- | --- | --- |");
for (const r of rows) {
  console.log(`| ${r.bench} | ${r.figure} | ${formatFigure(r.weir)} | ${formatFigure(r.baseline)} | ${r.unit} | ${ratioOf(r)} | ${r.goal ?? ""} |`);
}
process.exit(failed > 0 ? 1 : 0);
