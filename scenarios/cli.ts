// `weir scenario [files or folders]` (default: scenarios/): runs each scenario file on its own fresh
// nats-server and prints a pass/fail table. Exit code 1 when any scenario failed (or passed although it
// is marked expectFailure), 0 otherwise.

import { relative } from "node:path";
import { ErrorCode, WeirError } from "../runtime/core/errors.ts";
import { findScenarioFiles, runScenario, type ScenarioResult } from "./runner.ts";

const LABEL: Record<ScenarioResult["outcome"], string> = {
  passed: "pass",
  failed: "FAIL",
  xfail: "xfail",
  xpass: "XPASS",
};

export async function scenarioCommand(paths: string[], flags: { verbose?: boolean }): Promise<number> {
  const files = findScenarioFiles(paths.length ? paths : ["scenarios"]);
  if (files.length === 0) throw new WeirError(ErrorCode.Scenario, `no *.scenario.yaml files in ${paths.length ? paths.join(", ") : "scenarios/"}`);
  const out = process.stdout;
  const results: ScenarioResult[] = [];
  for (const file of files) {
    const shown = relative(process.cwd(), file) || file;
    if (flags.verbose) out.write(`\n▶ ${shown}\n`);
    else if (out.isTTY) out.write(`  running ${shown} ...\r`);
    const r = await runScenario(file, flags.verbose ? { log: (l) => out.write(`${l}\n`) } : {});
    if (out.isTTY && !flags.verbose) out.write("\x1b[2K");
    if (flags.verbose && !r.ok && r.stderr) out.write(`job stderr:\n${r.stderr.replace(/^/gm, "  | ")}\n`);
    results.push(r);
  }
  out.write(`${formatTable(results)}\n`);
  return results.every((r) => r.ok) ? 0 : 1;
}

/** The pass/fail table: scenario, result, seconds, first failure reason; then a summary line. */
export function formatTable(results: readonly ScenarioResult[]): string {
  const rows = results.map((r) => [r.name, LABEL[r.outcome], (r.durationMs / 1000).toFixed(1), r.reason ?? ""]);
  const head = ["scenario", "result", "secs", "reason"];
  const width = (i: number) => Math.max(head[i]!.length, ...rows.map((row) => row[i]!.length));
  const w = [Math.min(width(0), 56), width(1), width(2)];
  const cell = (s: string, n: number) => (s.length > n ? `${s.slice(0, n - 1)}…` : s.padEnd(n));
  const line = (row: string[]) => `${cell(row[0]!, w[0]!)}  ${cell(row[1]!, w[1]!)}  ${row[2]!.padStart(w[2]!)}  ${row[3]}`.trimEnd();
  const count = (o: ScenarioResult["outcome"]) => results.filter((r) => r.outcome === o).length;
  const summary = [`${results.length} scenario${results.length === 1 ? "" : "s"}: ${count("passed")} passed`, `${count("failed")} failed`];
  if (count("xfail")) summary.push(`${count("xfail")} expected to fail`);
  if (count("xpass")) summary.push(`${count("xpass")} passed unexpectedly`);
  return [line(head), ...rows.map(line), "", summary.join(", ")].join("\n");
}
