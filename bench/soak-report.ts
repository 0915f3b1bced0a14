// The verdicts of `npm run soak`: per figure, first vs last sample after the warm-up, the least-squares
// slope per 10 minutes, and whether it stayed flat (or, for what grows with the input by design, whether
// its rate stayed steady).
import type { Sample } from "./soak-sample.ts";

/** Growth after warm-up allowed for a flat figure: TOLERANCE of its warm-up value, or the floor if larger. */
export const TOLERANCE = 0.1;
const floorOf = (figure: string): number =>
  figure.endsWith("RSS MB") ? 16 : figure.endsWith("msgs") ? 100 : figure.endsWith("KiB") ? 256 : 0;
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
  const span = xs[xs.length - 1]! - xs[0]!;
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
    const allowed = Math.max(TOLERANCE * Math.abs(first), floorOf(figure));
    const growth = perMin * span;
    const flat = Math.abs(growth) <= allowed && Math.abs(last - first) <= allowed;
    return { figure, first, last, slopePer10Min: perMin * 10, verdict: `${flat ? "flat" : "GROWS"} (${fmt(growth)} over ${span} min by the slope, allowed ±${fmt(allowed)})` };
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
