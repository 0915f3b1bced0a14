// The `weir` command as a user runs it: a child process, its output kept, a deadline on every wait.
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { fileURLToPath } from "node:url";

export const WEIR = fileURLToPath(new URL("../../bin/weir.mjs", import.meta.url));

export interface WeirExit { readonly code: number | null; readonly stdout: string; readonly stderr: string }

export interface WeirProcess {
  readonly child: ChildProcess;
  stdout(): string;
  stderr(): string;
  readonly exited: Promise<WeirExit>;
  /** Resolves once stderr contains `text`; rejects at the deadline or when the process exits first. */
  waitForStderr(text: string | RegExp, deadlineMs: number): Promise<void>;
}

export function startWeir(args: readonly string[], options: { cwd?: string; env?: Record<string, string> } = {}): WeirProcess {
  const env: NodeJS.ProcessEnv = { ...process.env, FORCE_COLOR: "0", NO_COLOR: "1", ...options.env };
  const child = spawn(process.execPath, [WEIR, ...args], { cwd: options.cwd ?? process.cwd(), env, stdio: ["ignore", "pipe", "pipe"] });
  let out = "";
  let err = "";
  child.stdout!.on("data", (d) => { out += d; });
  child.stderr!.on("data", (d) => { err += d; });
  const exited = new Promise<WeirExit>((resolve) => child.on("close", (code) => resolve({ code, stdout: out, stderr: err })));
  const matches = (text: string | RegExp) => (typeof text === "string" ? err.includes(text) : text.test(err));
  return {
    child,
    stdout: () => out,
    stderr: () => err,
    exited,
    async waitForStderr(text, deadlineMs) {
      const deadline = Date.now() + deadlineMs;
      let gone = false;
      void exited.then(() => { gone = true; });
      while (!matches(text)) {
        if (gone) throw new Error(`weir ${args.join(" ")} exited before printing ${text}: ${err.slice(-800)}`);
        if (Date.now() > deadline) throw new Error(`weir ${args.join(" ")} did not print ${text} within ${deadlineMs} ms: ${err.slice(-800)}`);
        await new Promise((r) => setTimeout(r, 50));
      }
    },
  };
}

/** SIGKILLs `weir` and the processes it started (`--workers N`), which a SIGKILLed supervisor cannot stop. */
export function killWeir(p: WeirProcess): void {
  if (p.child.pid !== undefined && p.child.exitCode === null) spawnSync("pkill", ["-KILL", "-P", String(p.child.pid)]);
  p.child.kill("SIGKILL");
}

/** Runs `weir <args>` to the end (killed at the deadline, with the workers it started). */
export async function runWeir(args: readonly string[], options: { cwd?: string; env?: Record<string, string>; deadlineMs?: number } = {}): Promise<WeirExit> {
  const p = startWeir(args, options);
  const timer = setTimeout(() => killWeir(p), options.deadlineMs ?? 60_000);
  try {
    return await p.exited;
  } finally {
    clearTimeout(timer);
  }
}

/** Polls `check` until it returns a value (not undefined), or throws at the deadline naming `what`. */
export async function eventually<T>(what: string, deadlineMs: number, check: () => Promise<T | undefined> | T | undefined): Promise<T> {
  const deadline = Date.now() + deadlineMs;
  for (;;) {
    const v = await check();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`${what}: not seen within ${deadlineMs} ms`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** `p`'s value, or undefined if it has not settled within `ms` (the timer is cleared either way). */
export async function within<T>(p: Promise<T>, ms: number): Promise<T | undefined> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([p, new Promise<undefined>((r) => { timer = setTimeout(r, ms, undefined); })]);
  } finally {
    clearTimeout(timer);
  }
}

/** A TCP port free on loopback right now (for --http in tests and benches). */
export { freePort } from "../../runtime/nats/stable-port.ts";
