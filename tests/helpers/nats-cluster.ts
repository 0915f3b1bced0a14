// A JetStream cluster of n real nats-servers on loopback for tests: random client ports, cluster ports
// picked free before launch (every server's routes must name them), one store directory per server
// (kept across kill/restart, removed on stop), distinct server names, one cluster name.
//   const cluster = await startCluster(3); try { ... } finally { await cluster.stop(); }

import { createServer } from "node:net";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { connect } from "@nats-io/transport-node";
import { jetstreamManager, StorageType } from "@nats-io/jetstream";
import { launchNatsServer, type NatsServerProcess } from "../../runtime/nats/server-process.ts";

export interface NatsCluster extends AsyncDisposable {
  /** Client URLs, one per server (a killed server's URL stays, for its restart on the same port). */
  readonly urls: readonly string[];
  stop(): Promise<void>;
  /** SIGKILL server i (its store stays). */
  kill(i: number): Promise<void>;
  /** Starts server i again on its ports and store, then waits for a JetStream meta leader. */
  restart(i: number): Promise<void>;
}

/** A free loopback port (bound, read, released: the server binds it a moment later; a race is retried). */
function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once("error", reject);
    s.listen(0, "127.0.0.1", () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
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

export async function startCluster(n = 3): Promise<NatsCluster> {
  const root = mkdtempSync(join(tmpdir(), "weir-cluster-"));
  const servers: Array<NatsServerProcess | undefined> = [];
  const clusterPorts: number[] = [];
  const clientPorts: number[] = [];
  const name = `weir-test-${process.pid}`;
  const argsOf = (i: number) => [
    "-n", `s${i}`, "--cluster_name", name,
    "--cluster", `nats://127.0.0.1:${clusterPorts[i]}`,
    "--routes", clusterPorts.filter((_, j) => j !== i).map((p) => `nats://127.0.0.1:${p}`).join(","),
  ];
  const launch = async (i: number, port?: number) => {
    let lastError: unknown;
    for (let attempt = 0; attempt < 5; attempt++) {
      try {
        return await launchNatsServer({ dir: join(root, `s${i}`), args: argsOf(i), ...(port === undefined ? {} : { port }) });
      } catch (e) {
        lastError = e; // the picked cluster port was taken in the meantime: pick again (first start only)
        if (port !== undefined) break;
        clusterPorts[i] = await freePort();
      }
    }
    throw lastError;
  };
  const stop = async () => {
    await Promise.all(servers.map((s) => s?.stop()));
    rmSync(root, { recursive: true, force: true });
  };
  try {
    for (let i = 0; i < n; i++) clusterPorts.push(await freePort());
    for (let i = 0; i < n; i++) {
      const s = await launch(i);
      servers.push(s);
      clientPorts.push(s.port);
    }
    await waitForJetStream(servers[0]!.url, n);
  } catch (e) {
    await stop();
    throw e;
  }
  const urls = clientPorts.map((p) => `nats://127.0.0.1:${p}`);
  return {
    urls,
    stop,
    async kill(i) {
      await servers[i]?.kill();
      servers[i] = undefined;
    },
    async restart(i) {
      await servers[i]?.kill();
      servers[i] = await launch(i, clientPorts[i]);
      await waitForJetStream(urls[i]!);
    },
    [Symbol.asyncDispose]: stop,
  };
}
