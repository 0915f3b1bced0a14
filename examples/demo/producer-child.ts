// The demo's side of its producer process (producer-process.ts): starts it, follows its reports, stops it.

import { spawn, type ChildProcess } from "node:child_process";
import { fileURLToPath } from "node:url";
import type { NatsSettings } from "../../runtime/nats/connection-settings.ts";
import type { FromProducer, ProducerReport, ToProducer } from "./producer-protocol.ts";

const SCRIPT = fileURLToPath(new URL("./producer-process.ts", import.meta.url));
const EMPTY: ProducerReport = { produced: 0, malformed: 0, failed: 0, elapsedMs: 0, cpuMs: 0 };

export class ProducerProcess {
  private last: ProducerReport = EMPTY;
  private final: ProducerReport | undefined;
  private failure: string | undefined;
  private readonly exited: Promise<number | null>;

  private constructor(private readonly child: ChildProcess) {
    child.on("message", (m: FromProducer) => {
      if (m.type === "progress") this.last = m.report;
      else if (m.type === "done") this.last = this.final = m.report;
      else if (m.type === "error") this.failure ??= m.message;
    });
    this.exited = new Promise((resolve) => child.once("exit", (code, signal) => {
      if (this.final === undefined) this.failure ??= `exited (${signal ?? `code ${code}`}) before reporting`;
      resolve(code);
    }));
  }

  /** Starts the producer and resolves once it publishes (it connected), or rejects naming why not. */
  static async start(settings: NatsSettings, ratePerSec: number, deadlineMs = 30_000): Promise<ProducerProcess> {
    // The tsx loader this process runs under, found from here: `npx weir demo` may run in any folder.
    const tsx = import.meta.resolve("tsx");
    const child = spawn(process.execPath, ["--import", tsx, SCRIPT], { stdio: ["ignore", "inherit", "inherit", "ipc"] });
    const p = new ProducerProcess(child);
    const started = new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`the producer process did not start within ${deadlineMs} ms`)), deadlineMs);
      child.on("message", (m: FromProducer) => {
        // It listens once its modules loaded (a message sent earlier could be lost), then connects.
        if (m.type === "listening") child.send({ type: "start", settings, ratePerSec } satisfies ToProducer);
        else if (m.type === "started") { clearTimeout(timer); resolve(); }
      });
      void p.exited.then(() => { clearTimeout(timer); reject(new Error(`the producer process ${p.failure}`)); });
    });
    try {
      await started;
    } catch (e) {
      child.kill("SIGKILL");
      throw e;
    }
    return p;
  }

  get pid(): number { return this.child.pid ?? 0; }

  /** Its latest report (every 250 ms). */
  get report(): ProducerReport { return this.last; }

  /** The producer failed (its message), if it did. */
  get error(): string | undefined { return this.failure; }

  /** Asks it to stop, waits for its last acks and its final report. */
  async stop(deadlineMs = 30_000): Promise<ProducerReport> {
    if (this.child.connected) this.child.send({ type: "stop" } satisfies ToProducer);
    const timer = setTimeout(() => this.child.kill("SIGKILL"), deadlineMs);
    try {
      await this.exited;
    } finally {
      clearTimeout(timer);
    }
    if (this.final === undefined) throw new Error(`the producer process ${this.failure ?? "gave no final report"}`);
    return this.final;
  }
}
