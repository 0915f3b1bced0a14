// The verdicts of `npm run soak`: per figure, first vs last sample after the warm-up, the least-squares
// slope per 10 minutes, and whether it stayed flat (or, for what grows with the input by design, whether
// its rate stayed steady). `node --import tsx bench/soak-report.ts <log>` judges the rows of a saved log.
import type { Sample } from "./soak-sample.ts";

/** Growth allowed for a flat figure: TOLERANCE of its peak in the first half after warm-up, or the floor if larger. */
export const TOLERANCE = 0.1;
// The changelog saw-tooths between truncations (each materialization into KV truncates it; one message per
// key group per checkpoint in between), so a sample lands anywhere on the tooth: a wider floor for it.
const floorOf = (figure: string): number =>
  figure.startsWith("changelog ") ? 1000
    : figure.endsWith("RSS MB") ? 16 : figure.endsWith("msgs") ? 100 : figure.endsWith("KiB") ? 256 : 0;
/** Figures that grow with the input by design: judged on their per-minute rate instead. */
const growing = (figure: string): boolean => /^(in|counts|windows) /.test(figure) || /^records |^checkpoint$/.test(figure);

export interface Verdict {
  readonly figure: string;
  readonly first: number;
  readonly last: number;
  readonly slopePer10Min: number;
  readonly verdict: string;
}

function slope(xs: readonly number[], ys: readonly number[]): number {
  const n = xs.length;
  const mx = xs.reduce((a, b) => a + b, 0) / n;
  const my = ys.reduce((a, b) => a + b, 0) / n;
  let num = 0;
  let den = 0;
  for (let i = 0; i < n; i++) { num += (xs[i]! - mx) * (ys[i]! - my); den += (xs[i]! - mx) ** 2; }
  return den === 0 ? 0 : num / den;
}

export function verdicts(samples: readonly Sample[], warmupMinutes: number): Verdict[] {
  const after = samples.filter((s) => s.minute >= warmupMinutes);
  if (after.length < 2) return [];
  const xs = after.map((s) => s.minute);
  return Object.keys(after[0]!.figures).filter((f) => f !== "restarts").map((figure) => {
    const ys = after.map((s) => s.figures[figure]!);
    const first = ys[0]!;
    const last = ys[ys.length - 1]!;
    const perMin = slope(xs, ys);
    if (growing(figure)) {
      // Steady: the rate over the second half within TOLERANCE of the rate over the first half.
      const mid = Math.floor(after.length / 2);
      const rate = (a: number, b: number) => (ys[b]! - ys[a]!) / (xs[b]! - xs[a]! || 1);
      const r1 = rate(0, mid);
      const r2 = rate(mid, ys.length - 1);
      const steady = Math.abs(r2 - r1) <= TOLERANCE * Math.max(Math.abs(r1), 1);
      return { figure, first, last, slopePer10Min: perMin * 10, verdict: `${steady ? "steady" : "UNSTEADY"} rate (${fmt(r1)} → ${fmt(r2)} /min; grows with the input by design)` };
    }
    // Peaks, not end points: the changelog and RSS saw-tooth (truncation, GC). A leak raises the peak of
    // the second half of the run above the peak of the first; shrinking is never a leak.
    const mid = Math.ceil(ys.length / 2);
    const peak1 = Math.max(...ys.slice(0, mid));
    const peak2 = Math.max(...ys.slice(mid));
    const allowed = Math.max(TOLERANCE * Math.abs(peak1), floorOf(figure));
    const flat = peak2 - peak1 <= allowed;
    return { figure, first, last, slopePer10Min: perMin * 10, verdict: `${flat ? "flat" : "GROWS"} (peak ${fmt(peak1)} → ${fmt(peak2)} from the first to the second half, allowed +${fmt(allowed)})` };
  });
}

export function fmt(n: number): string {
  if (Number.isNaN(n)) return "-";
  return Math.abs(n) >= 100 ? Math.round(n).toLocaleString("en-US") : Number(n.toFixed(1)).toString();
}

/** A markdown table: the figures as columns, one row per sample. */
export function tableHeader(figures: readonly string[]): string {
  return `| min | ${figures.join(" | ")} |\n| --- |${figures.map(() => " --- |").join("")}`;
}

export function tableRow(s: Sample): string {
  return `| ${s.minute} | ${Object.values(s.figures).map((v) => (Number.isNaN(v) ? "-" : String(v))).join(" | ")} |`;
}

/** The samples in the table rows of a soak log (a header row names the figures). */
export function parseLog(text: string): Sample[] {
  const lines = text.split("\n").filter((l) => l.startsWith("| "));
  const header = lines.find((l) => l.startsWith("| min |"));
  if (!header) return [];
  const names = header.split("|").map((c) => c.trim()).filter(Boolean).slice(1);
  return lines.filter((l) => /^\| [0-9.]+ \|/.test(l)).map((l) => {
    const cells = l.split("|").map((c) => c.trim()).filter(Boolean);
    const figures: Record<string, number> = {};
    names.forEach((n, i) => { figures[n] = cells[i + 1] === "-" ? Number.NaN : Number(cells[i + 1]); });
    return { minute: Number(cells[0]), figures, consumersByStream: {} };
  });
}

if (process.argv[1]?.endsWith("soak-report.ts")) {
  const { readFileSync } = await import("node:fs");
  const file = process.argv[2];
  if (!file) { console.error("usage: node --import tsx bench/soak-report.ts <soak log> [warm-up minutes]"); process.exit(2); }
  const samples = parseLog(readFileSync(file, "utf8"));
  const warmup = Number(process.argv[3] ?? 5);
  console.log("| figure | after warm-up | last | slope / 10 min | verdict |\n| --- | --- | --- | --- | --- |");
  for (const v of verdicts(samples, warmup)) console.log(`| ${v.figure} | ${fmt(v.first)} | ${fmt(v.last)} | ${fmt(v.slopePer10Min)} | ${v.verdict} |`);
}
