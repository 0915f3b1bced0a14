// `${...}` templates in published messages: `"user-${i % 3}"`, `{ ts: "${1000 * i}" }`. An expression is
// arithmetic over the variables below (+ - * / %, parentheses, and floor/ceil/round/abs/min/max); no
// other code runs. A JSON string that is exactly one `${...}` becomes the expression's number.
//
//   i      index of the message within the publish step (0-based; `lines` share one i per repetition)
//   n      the step's `count`
//   line   index of the line within `lines` (0 elsewhere)
//   now    Date.now() when the message is built
//   start  Date.now() when the scenario started (a stable base for event times)

import { StepFailure } from "./step-failure.ts";

export interface TemplateVars {
  readonly i: number;
  readonly n: number;
  readonly line: number;
  readonly now: number;
  readonly start: number;
}

const VARIABLES = ["i", "n", "line", "now", "start"] as const;
const FUNCTIONS: Record<string, (...a: number[]) => number> = {
  floor: Math.floor, ceil: Math.ceil, round: Math.round, abs: Math.abs, min: Math.min, max: Math.max,
};

type Node =
  | { t: "num"; v: number }
  | { t: "var"; name: keyof TemplateVars }
  | { t: "neg"; e: Node }
  | { t: "bin"; op: string; a: Node; b: Node }
  | { t: "call"; fn: string; args: Node[] };

const TEMPLATE = /\$\{([^}]*)\}/g;

function tokenize(src: string): string[] {
  const tokens: string[] = [];
  const re = /\s*(\d+(?:\.\d+)?|[A-Za-z_][A-Za-z0-9_]*|[-+*/%(),])/y;
  let pos = 0;
  while (pos < src.length) {
    if (/^\s*$/.test(src.slice(pos))) break;
    re.lastIndex = pos;
    const m = re.exec(src);
    if (!m) throw new Error(`unexpected "${src.slice(pos).trim()[0]}"`);
    tokens.push(m[1]!);
    pos = re.lastIndex;
  }
  return tokens;
}

function parse(src: string): Node {
  const tokens = tokenize(src);
  let k = 0;
  const peek = () => tokens[k];
  const next = () => tokens[k++];
  const expect = (s: string) => { if (next() !== s) throw new Error(`expected "${s}"`); };
  const primary = (): Node => {
    const tok = next();
    if (tok === undefined) throw new Error("unexpected end");
    if (tok === "(") { const e = sum(); expect(")"); return e; }
    if (tok === "-") return { t: "neg", e: primary() };
    if (/^\d/.test(tok)) return { t: "num", v: Number(tok) };
    if (/^[A-Za-z_]/.test(tok)) {
      if (peek() === "(") {
        if (!(tok in FUNCTIONS)) throw new Error(`unknown function ${tok} (known: ${Object.keys(FUNCTIONS).join(", ")})`);
        next();
        const args: Node[] = [];
        if (peek() !== ")") { args.push(sum()); while (peek() === ",") { next(); args.push(sum()); } }
        expect(")");
        return { t: "call", fn: tok, args };
      }
      if (!(VARIABLES as readonly string[]).includes(tok)) throw new Error(`unknown variable ${tok} (known: ${VARIABLES.join(", ")})`);
      return { t: "var", name: tok as keyof TemplateVars };
    }
    throw new Error(`unexpected "${tok}"`);
  };
  const product = (): Node => {
    let a = primary();
    while (peek() === "*" || peek() === "/" || peek() === "%") { const op = next()!; a = { t: "bin", op, a, b: primary() }; }
    return a;
  };
  const sum = (): Node => {
    let a = product();
    while (peek() === "+" || peek() === "-") { const op = next()!; a = { t: "bin", op, a, b: product() }; }
    return a;
  };
  const node = sum();
  if (k !== tokens.length) throw new Error(`unexpected "${tokens[k]}"`);
  return node;
}

function evaluate(node: Node, vars: TemplateVars): number {
  switch (node.t) {
    case "num": return node.v;
    case "var": return vars[node.name];
    case "neg": return -evaluate(node.e, vars);
    case "call": return FUNCTIONS[node.fn]!(...node.args.map((a) => evaluate(a, vars)));
    case "bin": {
      const a = evaluate(node.a, vars);
      const b = evaluate(node.b, vars);
      switch (node.op) {
        case "+": return a + b;
        case "-": return a - b;
        case "*": return a * b;
        case "/": return a / b;
        default: return a % b;
      }
    }
  }
}

/** The first problem with the templates in `s`, or undefined. */
export function templateProblem(s: string): string | undefined {
  for (const m of s.matchAll(TEMPLATE)) {
    try { parse(m[1]!); } catch (e) { return `a valid template (\${${m[1]}}: ${(e as Error).message})`; }
  }
  if (s.replace(TEMPLATE, "").includes("${")) return "a valid template (a ${ without its closing })";
  return undefined;
}

/** The first problem with any template string inside a JSON value. */
export function jsonTemplateProblem(value: unknown): string | undefined {
  if (typeof value === "string") return templateProblem(value);
  if (Array.isArray(value)) { for (const v of value) { const p = jsonTemplateProblem(v); if (p) return p; } return undefined; }
  if (typeof value === "object" && value !== null) {
    for (const [k, v] of Object.entries(value)) { const p = templateProblem(k) ?? jsonTemplateProblem(v); if (p) return p; }
  }
  return undefined;
}

/** Fills templates, each expression parsed once (a publish step fills the same ones for every message). */
export class TemplateFiller {
  private readonly parsed = new Map<string, Node>();

  fillString(s: string, vars: TemplateVars): string {
    if (!s.includes("${")) return s;
    return s.replace(TEMPLATE, (_, expr: string) => String(this.value(expr, vars)));
  }

  /** Fills every string of a JSON value; a string that is exactly one template becomes a number. */
  fillJson(value: unknown, vars: TemplateVars): unknown {
    if (typeof value === "string") {
      const whole = /^\$\{([^}]*)\}$/.exec(value);
      if (whole) return this.value(whole[1]!, vars);
      return this.fillString(value, vars);
    }
    if (Array.isArray(value)) return value.map((v) => this.fillJson(v, vars));
    if (typeof value === "object" && value !== null) {
      const out: Record<string, unknown> = {};
      for (const [k, v] of Object.entries(value)) out[this.fillString(k, vars)] = this.fillJson(v, vars);
      return out;
    }
    return value;
  }

  /** An expression's value; one that is not a finite number (1 / 0, floor() of nothing) fails the step. */
  private value(expr: string, vars: TemplateVars): number {
    const v = evaluate(this.parse(expr), vars);
    if (!Number.isFinite(v)) throw new StepFailure(`template \${${expr}} gives ${v} for i = ${vars.i}`);
    return v;
  }

  private parse(src: string): Node {
    let node = this.parsed.get(src);
    if (node === undefined) this.parsed.set(src, (node = parse(src)));
    return node;
  }
}
