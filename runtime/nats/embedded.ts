// weir's embedded default server: `nats-server -c nats.conf` (JetStream, store under .weir/ beside
// nats.conf: the server runs in the config's directory, as relative paths in it are meant), started
// detached on first use and reused while it runs. A port held by anything other than that server is
// reported, never silently connected to: we read the INFO line and check the server_name.

import { spawn } from "node:child_process";
import { closeSync, mkdirSync, openSync, readFileSync } from "node:fs";
import { connect as tcpConnect } from "node:net";
import { dirname, join, resolve } from "node:path";
import { ErrorCode, WeirError } from "../core/errors.ts";

export const EMBEDDED_SERVER_NAME = "weir-embedded";
export const defaultConfigPath = (): string => new URL("../../nats.conf", import.meta.url).pathname;

export interface EmbeddedServer {
  readonly url: string;
  /** true when this call started it, false when it was already running. */
  readonly started: boolean;
  readonly pid?: number;
}

export interface ConfigEndpoint { readonly host: string; readonly port: number }

export function readListen(configPath: string): ConfigEndpoint {
  const text = readFileSync(configPath, "utf8");
  const listen = /^\s*listen\s*[:=]\s*"?([^"\s]+)"?/m.exec(text)?.[1];
  const portOnly = /^\s*port\s*[:=]\s*(\d+)/m.exec(text)?.[1];
  if (listen) {
    const [host, port] = listen.includes(":") ? [listen.slice(0, listen.lastIndexOf(":")), listen.slice(listen.lastIndexOf(":") + 1)] : ["127.0.0.1", listen];
    return { host: host || "127.0.0.1", port: Number(port) };
  }
  return { host: "127.0.0.1", port: Number(portOnly ?? 4222) };
}

/**
 * Whether the weir server running is this config's: its pid file (relative to `workDir`) names a live
 * process. Every checkout's nats.conf has the same port and server name: without this, a second
 * checkout would use the first one's server and store (and see, stop or join its jobs). A config
 * without a pid_file cannot tell, and reuses it.
 */
function ownsRunningServer(configPath: string, workDir: string): boolean {
  const pidFile = /^\s*pid_file\s*[:=]\s*"?([^"\s]+)"?/m.exec(readFileSync(configPath, "utf8"))?.[1];
  if (pidFile === undefined) return true;
  let pid: number;
  try { pid = Number(readFileSync(resolve(workDir, pidFile), "utf8").trim()); } catch { return false; }
  if (!Number.isInteger(pid) || pid <= 0) return false;
  try { process.kill(pid, 0); return true; } catch (e) { return (e as NodeJS.ErrnoException).code === "EPERM"; }
}

type Probe = { kind: "free" } | { kind: "nats"; serverName: string; jetstream: boolean } | { kind: "other"; banner: string };

/** What listens on host:port: nothing, a NATS server (with its name), or some other program. */
export function probePort(host: string, port: number, timeoutMs = 1500): Promise<Probe> {
  return new Promise((resolvePromise) => {
    const socket = tcpConnect({ host, port });
    let data = "";
    const done = (p: Probe) => { socket.destroy(); clearTimeout(timer); resolvePromise(p); };
    const timer = setTimeout(() => done({ kind: "other", banner: data.slice(0, 60) || "(no answer)" }), timeoutMs);
    socket.on("error", (e: NodeJS.ErrnoException) => done(e.code === "ECONNREFUSED" ? { kind: "free" } : { kind: "other", banner: e.message }));
    socket.on("data", (chunk) => {
      data += chunk.toString("utf8");
      const nl = data.indexOf("\r\n");
      if (nl < 0 && data.length < 4096) return;
      const line = nl < 0 ? data : data.slice(0, nl);
      if (!line.startsWith("INFO ")) return done({ kind: "other", banner: line.slice(0, 60) });
      try {
        const info = JSON.parse(line.slice(5)) as { server_name?: string; jetstream?: boolean };
        done({ kind: "nats", serverName: info.server_name ?? "", jetstream: Boolean(info.jetstream) });
      } catch {
        done({ kind: "other", banner: line.slice(0, 60) });
      }
    });
  });
}

/**
 * `workDir`: where the config's relative paths (store_dir, pid_file) and the server's log land; by
 * default the config file's directory, whatever the current directory is, so every command finds the
 * same store.
 */
export async function ensureEmbeddedServer(options: { configPath?: string; workDir?: string } = {}): Promise<EmbeddedServer> {
  const configPath = resolve(options.configPath ?? defaultConfigPath());
  const workDir = resolve(options.workDir ?? dirname(configPath));
  const { host, port } = readListen(configPath);
  const url = `nats://${host}:${port}`;
  const probe = await probePort(host, port);
  if (probe.kind === "nats" && probe.serverName === EMBEDDED_SERVER_NAME) {
    if (ownsRunningServer(configPath, workDir)) return { url, started: false };
    throw new WeirError(ErrorCode.PortTaken, `port ${port} (from ${configPath}) is taken by the embedded server of another weir checkout (its store is not ${join(workDir, ".weir")}); stop it there, or pass --nats ${url} / set WEIR_NATS_URL to share it`);
  }
  if (probe.kind === "nats") {
    throw new WeirError(ErrorCode.PortTaken, `port ${port} (from ${configPath}) is taken by another NATS server ("${probe.serverName}"), not weir's embedded one; stop it, or pass --nats ${url} / set WEIR_NATS_URL to use it`);
  }
  if (probe.kind === "other") {
    throw new WeirError(ErrorCode.PortTaken, `port ${port} (from ${configPath}) is taken by another program (${probe.banner}); free it or pass --nats <url>`);
  }
  const stateDir = join(workDir, ".weir");
  mkdirSync(stateDir, { recursive: true });
  const logFd = openSync(join(stateDir, "nats-server.log"), "a");
  let child;
  try {
    child = spawn("nats-server", ["-c", configPath], { cwd: workDir, detached: true, stdio: ["ignore", logFd, logFd] });
  } finally {
    closeSync(logFd);
  }
  const spawnFailed = new Promise<string>((r) => child.on("error", (e) => r(`cannot start nats-server (${e.message}); install it with: apt-get install -y nats-server`)));
  const exited = new Promise<string>((r) => child.on("exit", (code) => r(`nats-server exited with code ${code}; see ${join(stateDir, "nats-server.log")}`)));
  child.unref();
  const deadline = Date.now() + 10_000;
  for (;;) {
    const failed = await Promise.race([spawnFailed, exited, new Promise<undefined>((r) => setTimeout(() => r(undefined), 50))]);
    if (failed) throw new WeirError(ErrorCode.ServerStart, failed);
    const p = await probePort(host, port, 500);
    if (p.kind === "nats") return { url, started: true, ...(child.pid !== undefined ? { pid: child.pid } : {}) };
    if (Date.now() > deadline) throw new WeirError(ErrorCode.ServerStart, `nats-server did not answer on ${url} within 10 s; see ${join(stateDir, "nats-server.log")}`);
  }
}
