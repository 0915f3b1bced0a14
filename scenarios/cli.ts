// `weir scenario [files or folders]` (default: scenarios/): runs each scenario file on its own fresh
// nats-server and prints a pass/fail table. Exit code 1 when any scenario failed (or passed although it
// is marked expectFailure), 130 or 143 when interrupted by SIGINT or SIGTERM, 0 otherwise.

import { findScenarioFiles, runScenario, shownPath, type ScenarioResult } from "./runner.ts";

const LABEL: Record<ScenarioResult["outcome"], string> = {
  passed: "pass",
  failed: "FAIL",
  xfail: "xfail",
  xpass: "XPASS",
};

export async function scenarioCommand(paths: string[], flags: { verbose?: boolean }): Promise<number> {
  const files = findScenarioFiles(paths.length ? paths : ["scenarios"], (note) => process.stderr.write(`weir: ${note}\n`));
  const out = process.stdout;
  const results: ScenarioResult[] = [];
  // SIGINT/SIGTERM (Ctrl-C, a CI timeout): the scenario running fails as interrupted and cleans up (its job
  // processes, its server and store), the rest do not run, and the table says so.
  const abort = new AbortController();
  let interruptedBy: string | undefined;
  const onSignal = (sig: NodeJS.Signals) => {
    if (interruptedBy) return;
    interruptedBy = sig;
    process.stderr.write(`weir: ${sig}: stopping the scenario and cleaning up\n`);
    abort.abort(sig);
  };
  process.on("SIGINT", onSignal);
  process.on("SIGTERM", onSignal);
  try {
    for (const file of files) {
      if (interruptedBy) break;
      const shown = shownPath(file);
      if (flags.verbose) out.write(`\n▶ ${shown}\n`);
      else if (out.isTTY) out.write(`  running ${shown} ...\r`);
      // Verbose: the job's stderr arrives through log as it comes ("[job] ..."), so a failure does not print it again.
      const r = await runScenario(file, { ...(flags.verbose ? { log: (l: string) => out.write(`${l}\n`) } : {}), signal: abort.signal });
      if (out.isTTY && !flags.verbose) out.write("\x1b[2K");
      results.push(r);
    }
  } finally {
    process.off("SIGINT", onSignal);
    process.off("SIGTERM", onSignal);
  }
  out.write(`${formatTable(results)}\n`);
  if (interruptedBy) {
    out.write(`interrupted by ${interruptedBy}: ${files.length - results.length} scenario${files.length - results.length === 1 ? "" : "s"} not run\n`);
    return interruptedBy === "SIGINT" ? 130 : 143;
  }
  return results.every((r) => r.ok) ? 0 : 1;
}

/**
 * The pass/fail table: scenario, result, seconds, first failure reason; then, for each scenario to fix,
 * its file and every failure (each failed expectation, not only the first); then a summary line.
 */
export function formatTable(results: readonly ScenarioResult[]): string {
  // A file that did not load is named by its row and its FAIL line: its error's own "<file>: " goes.
  const told = (r: ScenarioResult, text: string) => (r.notLoaded && text.startsWith(`${r.file}: `) ? text.slice(r.file.length + 2) : text);
  const rows = results.map((r) => [r.name, LABEL[r.outcome], (r.durationMs / 1000).toFixed(1), told(r, r.reason ?? "")]);
  const head = ["scenario", "result", "secs", "reason"];
  const width = (i: number) => Math.max(head[i]!.length, ...rows.map((row) => row[i]!.length));
  const w = [Math.min(width(0), 56), width(1), width(2)];
  const cell = (s: string, n: number) => (s.length > n ? `${s.slice(0, n - 1)}…` : s.padEnd(n));
  // A path (a file that did not load) loses its start, not its file name: two cut at the end read the same.
  const nameCell = (s: string, path: boolean) => (path && s.length > w[0]! ? `…${s.slice(s.length - w[0]! + 1)}` : cell(s, w[0]!));
  const line = (row: string[], path = false) => `${nameCell(row[0]!, path)}  ${cell(row[1]!, w[1]!)}  ${row[2]!.padStart(w[2]!)}  ${row[3]}`.trimEnd();
  const count = (o: ScenarioResult["outcome"]) => results.filter((r) => r.outcome === o).length;
  const summary = [`${results.length} scenario${results.length === 1 ? "" : "s"}: ${count("passed")} passed`, `${count("failed")} failed`];
  if (count("xfail")) summary.push(`${count("xfail")} expected to fail`);
  if (count("xpass")) summary.push(`${count("xpass")} passed unexpectedly`);
  const details = results.filter((r) => !r.ok).flatMap((r) => [
    "",
    `${LABEL[r.outcome]} ${shownPath(r.file)}${r.notLoaded ? "" : ` (${r.name})`}`,
    ...(r.outcome === "xpass" ? [r.reason ?? ""] : r.failures).map((f) => `  ${told(r, f)}`),
  ]);
  return [line(head), ...rows.map((row, i) => line(row, results[i]!.notLoaded)), ...details, "", summary.join(", ")].join("\n");
}
