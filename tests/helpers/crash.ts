// Runs a `weir run` child process for the crash tests, optionally SIGKILLing it at a chosen moment.
import { spawn } from "node:child_process";
import type { NatsConnection } from "@nats-io/transport-node";
import { fetchStatus } from "../../runtime/cli/commands/control.ts";

export interface RunResult { readonly code: number | null; readonly killed: boolean; readonly stderr: string }

/** Runs the job; with `killAfterMs`, SIGKILLs it that long after it reports running (startup varies with load). */
export function runJob(url: string, env: Record<string, string>, killAfterMs: number | undefined, job: string, afterCheckpoint?: { nc: NatsConnection; job: string }): Promise<RunResult> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ["bin/weir.mjs", "run", job, "--nats", url], { env: { ...process.env, ...env }, stdio: ["ignore", "ignore", "pipe"] });
    let stderr = "";
    let killed = false;
    let timer: NodeJS.Timeout | undefined;
    let armed = false;
    const kill = () => { timer = setTimeout(() => { killed = true; child.kill("SIGKILL"); }, killAfterMs); };
    // With `afterCheckpoint`: the delay counts from the run's first completed checkpoint (so that the
    // kill tests a recovery however slow the machine is), unless the run ends first.
    const killAfterFirstCheckpoint = async (): Promise<void> => {
      while (child.exitCode === null) {
        const s = await fetchStatus(afterCheckpoint!.nc, afterCheckpoint!.job).catch(() => undefined);
        if ((s?.checkpoints?.completed ?? 0) >= 1) return kill();
        await new Promise((r) => setTimeout(r, 20));
      }
    };
    child.stderr.on("data", (d) => {
      stderr += d;
      if (killAfterMs !== undefined && !armed && stderr.includes("weir: running")) {
        armed = true;
        if (afterCheckpoint) void killAfterFirstCheckpoint(); else kill();
      }
    });
    child.on("exit", (code) => { if (timer) clearTimeout(timer); resolve({ code, killed, stderr }); });
  });
}

