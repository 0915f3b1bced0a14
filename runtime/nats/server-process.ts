// Launches a nats-server child process on a random loopback port with its own store directory.
// Used by tests, the scenario runner and benchmarks: never a developer's server, never a guessed port.

import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, readdirSync, readFileSync, rmSync, mkdirSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ErrorCode, WeirError } from "../core/errors.ts";

export interface NatsServerProcess extends AsyncDisposable {
  readonly url: string;
  readonly port: number;
  readonly storeDir: string;
  readonly pid: number;
  /** The HTTP monitoring endpoint (`/healthz`, `/varz`, `/jsz`) when launched with `-m`. */
  readonly monitorUrl?: string;
  /** Sends `signal` (e.g. SIGTERM: nats-server 2.9.10 shuts down at once, without handing its JetStream leaderships over first; only lame duck mode, SIGUSR2, does that) and waits for the exit; the store stays. */
  signal(signal: NodeJS.Signals): Promise<void>;
  stop(): Promise<void>;
  /** SIGKILL, as a crash: the store directory stays (a server launched on it again recovers it). */
  kill(): Promise<void>;
}

export interface LaunchOptions {
  /** Directory for the JetStream store and the ports file; a fresh temp dir when absent (removed on stop). */
  dir?: string;
  /** Port to listen on; a random free one when absent. Fixed, to restart a server where its clients reconnect. */
  port?: number | undefined;
  /** Extra command-line arguments for nats-server (`["-c", file]` for a config file). */
  args?: string[];
  /** Extra environment variables (a config file's `$VAR` references). */
  env?: Record<string, string>;
  startTimeoutMs?: number;
}

export async function launchNatsServer(options: LaunchOptions = {}): Promise<NatsServerProcess> {
  const ownDir = options.dir === undefined;
  const dir = options.dir ?? mkdtempSync(join(tmpdir(), "weir-nats-"));
  mkdirSync(dir, { recursive: true });
  const storeDir = join(dir, "js");
  let child: ChildProcess;
  try {
    child = spawn("nats-server", ["-a", "127.0.0.1", "-p", String(options.port ?? -1), "-js", "-sd", storeDir, "--ports_file_dir", dir, ...(options.args ?? [])], {
      stdio: ["ignore", "ignore", "pipe"],
      ...(options.env ? { env: { ...process.env, ...options.env } } : {}),
    });
  } catch (e) {
    throw new WeirError(ErrorCode.ServerStart, `cannot start nats-server: ${(e as Error).message}`, { cause: e });
  }
  let log = "";
  child.stderr!.on("data", (d) => { if (log.length < 20_000) log += d; });
  const exited = new Promise<number | null>((resolve) => child.on("exit", (code) => resolve(code)));
  const spawnError = new Promise<Error>((resolve) => child.on("error", resolve));
  const pid = child.pid;

  const deadline = Date.now() + (options.startTimeoutMs ?? 10_000);
  let url: string | undefined;
  let monitorUrl: string | undefined;
  while (url === undefined) {
    const failed = await Promise.race([
      spawnError.then((e) => `cannot start nats-server (${e.message}); install it with: apt-get install -y nats-server`),
      exited.then((code) => `nats-server exited with code ${code}: ${lastLine(log)}`),
      new Promise<undefined>((r) => setTimeout(() => r(undefined), 20)),
    ]);
    if (failed) {
      if (ownDir) rmSync(dir, { recursive: true, force: true });
      throw new WeirError(ErrorCode.ServerStart, failed);
    }
    const portsFile = readdirSync(dir).find((f) => f === `nats-server_${pid}.ports`);
    if (portsFile) {
      try {
        const ports = JSON.parse(readFileSync(join(dir, portsFile), "utf8")) as { nats: string[]; monitoring?: string[] };
        monitorUrl = ports.monitoring?.[0];
        url = ports.nats[0];
      } catch { /* file still being written */ }
    }
    if (url === undefined && Date.now() > deadline) {
      // Gone before its store is removed: a server still writing there would leave the folder behind.
      child.kill("SIGKILL");
      await exited;
      if (ownDir) rmSync(dir, { recursive: true, force: true });
      throw new WeirError(ErrorCode.ServerStart, `nats-server did not report its port within ${options.startTimeoutMs ?? 10_000} ms`);
    }
  }
  const port = Number(new URL(url).port);
  let stopped: Promise<void> | undefined;
  const stop = () => (stopped ??= (async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill("SIGTERM");
      const timer = setTimeout(() => child.kill("SIGKILL"), 5000);
      await exited;
      clearTimeout(timer);
    }
    if (ownDir) rmSync(dir, { recursive: true, force: true });
  })());
  const kill = async () => {
    if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
    await exited;
  };
  const signal = async (sig: NodeJS.Signals) => {
    if (child.exitCode === null && child.signalCode === null) child.kill(sig);
    await exited;
  };
  return { url, port, storeDir, pid: pid!, ...(monitorUrl ? { monitorUrl } : {}), signal, stop, kill, [Symbol.asyncDispose]: stop };
}

function lastLine(log: string): string {
  const lines = log.trim().split("\n");
  return lines[lines.length - 1] ?? "";
}
