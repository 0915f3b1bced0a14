// A JetStream cluster of n real nats-servers on loopback for tests: client and cluster ports picked free
// before launch, below the ephemeral range (every server's routes must name them, and a restart reuses
// them), one store directory per server (kept across kill/restart, removed on stop), distinct server
// names, one cluster name, a monitoring port each (random; ready means every server's `/healthz` says ok
// and a stream of n replicas can be placed).
//   const cluster = await startCluster(3); try { ... } finally { await cluster.stop(); }

import { mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { createServer, type Server } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { connect } from "@nats-io/transport-node";
import { jetstreamManager, StorageType } from "@nats-io/jetstream";
import { launchNatsServer, type NatsServerProcess } from "../../runtime/nats/server-process.ts";
import { stablePort } from "../../runtime/nats/stable-port.ts";

export interface NatsCluster extends AsyncDisposable {
  /** Client URLs, one per server (a killed server's URL stays, for its restart on the same port). */
  readonly urls: readonly string[];
  stop(): Promise<void>;
  /** Stops server i with `signal` (default SIGKILL, a crash; SIGTERM: a shutdown that closes connections cleanly but, on 2.9.10, hands no JetStream leadership over); its store stays. */
  kill(i: number, signal?: NodeJS.Signals): Promise<void>;
  /** Starts server i again on its ports and store, then waits until its `/healthz` says ok. */
  restart(i: number): Promise<void>;
  /** Index of the server that is the JetStream meta leader now (from a running server's `/jsz`). */
  metaLeader(): Promise<number>;
  /** Whether server i is running. */
  running(i: number): boolean;
  /**
   * Every running server's own view of every stream: its replica's messages and last sequence and the
   * leader it knows (`/jsz`). For a failed run's diagnosis: replicas that disagree show here.
   */
  streamViews(): Promise<string[]>;
}

/** Polls `monitorUrl`/healthz until it answers ok (JetStream current, streams caught up) or the deadline. */
export async function waitForHealthy(monitorUrl: string, deadlineMs = 60_000): Promise<void> {
  const deadline = Date.now() + deadlineMs;
  let last = "";
  while (Date.now() < deadline) {
    try {
      const r = await fetch(`${monitorUrl}/healthz`, { signal: AbortSignal.timeout(2000) });
      const body = (await r.json()) as { status?: string; error?: string };
      if (r.ok && body.status === "ok") return;
      last = body.error ?? JSON.stringify(body);
    } catch (e) {
      last = (e as Error).message;
    }
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(`${monitorUrl}/healthz not ok within ${deadlineMs} ms (last: ${last})`);
}

/**
 * Polls `$JS.API.INFO` on `url` until it answers without error (the JetStream cluster has a meta leader),
 * then, with `replicas`, until a stream of that many replicas can be placed (every peer is known).
 */
export async function waitForJetStream(url: string, replicas = 1, deadlineMs = 30_000): Promise<void> {
  const deadline = Date.now() + deadlineMs;
  const nc = await connect({ servers: url, timeout: 5000 });
  try {
    let last = "";
    while (Date.now() < deadline) {
      try {
        const m = await nc.request("$JS.API.INFO", undefined, { timeout: 1000 });
        const info = m.json<{ error?: { description?: string } }>();
        if (info.error) {
          last = info.error.description ?? "error";
        } else {
          if (replicas <= 1) return;
          const jsm = await jetstreamManager(nc);
          const name = `weir_cluster_ready_${process.pid}`;
          try {
            await jsm.streams.add({ name, subjects: [`weir.cluster-ready.${process.pid}`], num_replicas: replicas, storage: StorageType.Memory });
            await jsm.streams.delete(name);
            return;
          } catch (e) {
            last = (e as Error).message;
          }
        }
      } catch (e) {
        last = (e as Error).message;
      }
      await new Promise((r) => setTimeout(r, 100));
    }
    throw new Error(`JetStream at ${url} had no meta leader within ${deadlineMs} ms (last: ${last})`);
  } finally {
    await nc.close();
  }
}

interface JszStreams {
  account_details?: Array<{ stream_detail?: Array<{ name: string; cluster?: { leader?: string }; state?: { messages?: number; last_seq?: number } }> }>;
}

export interface ClusterOptions {
  /** Each server appends its log (timestamped by default) to `<logDir>/s<i>.log` there, kept after stop: evidence of elections. */
  readonly logDir?: string;
}

/**
 * Listens on `ports` (those free) while their server is down, dropping every connection at once (the other
 * nodes' routes retry as against a closed port): a port left free while its node was killed was once taken
 * by another test's server picking a free port, and the restart failed with "address already in use".
 */
async function holdPorts(ports: readonly number[]): Promise<{ release(): Promise<void> }> {
  const held: Server[] = [];
  for (const port of ports) {
    const server = createServer((socket) => socket.destroy());
    const ok = await new Promise<boolean>((resolve) => {
      server.once("error", () => resolve(false));
      server.listen(port, "127.0.0.1", () => resolve(true));
    });
    if (ok) held.push(server);
  }
  return { release: () => Promise.all(held.map((h) => new Promise<void>((resolve) => h.close(() => resolve())))).then(() => undefined) };
}

export async function startCluster(n = 3, options: ClusterOptions = {}): Promise<NatsCluster> {
  const root = mkdtempSync(join(tmpdir(), "weir-cluster-"));
  if (options.logDir !== undefined) mkdirSync(options.logDir, { recursive: true });
  const servers: Array<NatsServerProcess | undefined> = [];
  /** The ports of killed servers, held until their restart (holdPorts). */
  const holds: Array<{ release(): Promise<void> } | undefined> = [];
  const release = async (i: number) => {
    const h = holds[i];
    holds[i] = undefined;
    await h?.release();
  };
  const clusterPorts: number[] = [];
  const clientPorts: number[] = [];
  const name = `weir-test-${process.pid}`;
  const argsOf = (i: number) => [
    "-n", `s${i}`, "--cluster_name", name, "-m", "-1",
    "--cluster", `nats://127.0.0.1:${clusterPorts[i]}`,
    "--routes", clusterPorts.filter((_, j) => j !== i).map((p) => `nats://127.0.0.1:${p}`).join(","),
    ...(options.logDir !== undefined ? ["-l", join(options.logDir, `s${i}.log`)] : []),
  ];
  const launch = async (i: number, restarting: boolean) => {
    let lastError: unknown;
    for (let attempt = 0; attempt < 5; attempt++) {
      try {
        return await launchNatsServer({ dir: join(root, `s${i}`), args: argsOf(i), port: clientPorts[i] });
      } catch (e) {
        lastError = e; // a picked port was taken in the meantime: pick again (first start only)
        if (restarting) break;
        clusterPorts[i] = await stablePort();
        clientPorts[i] = await stablePort();
      }
    }
    throw lastError;
  };
  const stop = async () => {
    await Promise.all(holds.map((_, i) => release(i)));
    await Promise.all(servers.map((s) => s?.stop()));
    rmSync(root, { recursive: true, force: true });
  };
  try {
    // Ports a restart finds free (stable-port.ts): kept across kill and restart.
    for (let i = 0; i < n; i++) {
      clusterPorts.push(await stablePort());
      clientPorts.push(await stablePort());
    }
    for (let i = 0; i < n; i++) servers.push(await launch(i, false));
    await Promise.all(servers.map((s) => waitForHealthy(s!.monitorUrl!)));
    await waitForJetStream(servers[0]!.url, n);
  } catch (e) {
    await stop();
    throw e;
  }
  const urls = clientPorts.map((p) => `nats://127.0.0.1:${p}`);
  return {
    urls,
    stop,
    async kill(i, signal = "SIGKILL") {
      const s = servers[i];
      servers[i] = undefined;
      if (signal === "SIGKILL") await s?.kill();
      else await s?.signal(signal);
      if (s !== undefined && signal === "SIGKILL" && holds[i] === undefined) holds[i] = await holdPorts([clusterPorts[i]!, clientPorts[i]!]);
    },
    async restart(i) {
      await servers[i]?.kill();
      // The old process's sockets may hold the port a moment longer: retry.
      let last: unknown;
      for (let attempt = 0; attempt < 20 && !servers[i]; attempt++) {
        try {
          await release(i);
          servers[i] = await launch(i, true);
        } catch (e) {
          last = e;
          await new Promise((r) => setTimeout(r, 250));
        }
      }
      if (!servers[i]) throw last;
      // A replica restarted on its store catches up while the stream keeps growing: on a loaded 2-core
      // machine that took over 60 s once (JetStream stream not current).
      await waitForHealthy(servers[i]!.monitorUrl!, 120_000);
    },
    running: (i) => servers[i] !== undefined,
    async streamViews() {
      const lines: string[] = [];
      for (const [i, s] of servers.entries()) {
        if (!s?.monitorUrl) continue;
        try {
          const r = (await (await fetch(`${s.monitorUrl}/jsz?accounts=true&streams=true`, { signal: AbortSignal.timeout(5000) })).json()) as JszStreams;
          for (const a of r.account_details ?? []) {
            for (const d of a.stream_detail ?? []) lines.push(`s${i}: ${d.name} messages ${d.state?.messages} last seq ${d.state?.last_seq} leader ${d.cluster?.leader ?? "?"}`);
          }
        } catch (e) {
          lines.push(`s${i}: streams not described: ${(e as Error).message}`);
        }
      }
      return lines.sort();
    },
    async metaLeader() {
      const deadline = Date.now() + 30_000;
      for (;;) {
        for (const s of servers) {
          if (!s?.monitorUrl) continue;
          try {
            const r = (await (await fetch(`${s.monitorUrl}/jsz`, { signal: AbortSignal.timeout(2000) })).json()) as { meta_cluster?: { leader?: string } };
            const leader = r.meta_cluster?.leader;
            if (leader && /^s\d+$/.test(leader)) return Number(leader.slice(1));
          } catch { /* that server is busy or going: ask another */ }
        }
        if (Date.now() > deadline) throw new Error("no JetStream meta leader known within 30 s");
        await new Promise((r) => setTimeout(r, 200));
      }
    },
    [Symbol.asyncDispose]: stop,
  };
}
