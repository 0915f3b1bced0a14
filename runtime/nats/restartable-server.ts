// A nats-server that can be crashed (SIGKILL) and started again on the same port and store directory,
// as an operator restarting it would: for tests and benchmarks of what a job survives.

import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { launchNatsServer, type NatsServerProcess } from "./server-process.ts";
import { stablePort } from "./stable-port.ts";

export class RestartableServer implements AsyncDisposable {
  private current: NatsServerProcess | undefined;

  private constructor(private readonly dir: string, readonly url: string, readonly port: number, first: NatsServerProcess) {
    this.current = first;
  }

  static async start(): Promise<RestartableServer> {
    const dir = mkdtempSync(join(tmpdir(), "weir-nats-restart-"));
    let last: unknown;
    // A port no client socket can take while the server is down (stable-port.ts); picked again if taken meanwhile.
    for (let attempt = 0; attempt < 5; attempt++) {
      try {
        const first = await launchNatsServer({ dir, port: await stablePort() });
        return new RestartableServer(dir, first.url, first.port, first);
      } catch (e) {
        last = e;
      }
    }
    rmSync(dir, { recursive: true, force: true });
    throw last;
  }

  get running(): boolean { return this.current !== undefined; }

  /** SIGKILLs the server; its store stays. */
  async kill(): Promise<void> {
    const s = this.current;
    this.current = undefined;
    await s?.kill();
  }

  /** Starts it again on the same port and store (retrying while the old socket still holds the port). */
  async restart(): Promise<void> {
    if (this.current) return;
    let last: unknown;
    for (let attempt = 0; attempt < 20; attempt++) {
      try {
        this.current = await launchNatsServer({ dir: this.dir, port: this.port });
        return;
      } catch (e) {
        last = e;
        await new Promise((r) => setTimeout(r, 250));
      }
    }
    throw last;
  }

  async stop(): Promise<void> {
    const s = this.current;
    this.current = undefined;
    await s?.stop();
    rmSync(this.dir, { recursive: true, force: true });
  }

  [Symbol.asyncDispose](): Promise<void> { return this.stop(); }
}
