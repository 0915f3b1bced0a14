// Runs a `weir run` child process for the crash tests, optionally SIGKILLing it at a chosen moment.
import { spawn } from "node:child_process";
import type { NatsConnection } from "@nats-io/transport-node";
import { fetchStatus } from "../../runtime/cli/commands/control.ts";

const TRIGGER_DEADLINE_MS = 120_000;

export interface RunResult { readonly code: number | null; readonly killed: boolean; readonly stderr: string }

/**
 * When the kill delay starts instead of at "running": at the job's first completed checkpoint (`nc`,
 * `job`), or once `when` says so (polled): e.g. a point in its progress, whatever the machine's speed.
 */
export type KillTrigger = { readonly nc: NatsConnection; readonly job: string } | { readonly when: () => Promise<boolean> };

/** Runs the job; with `killAfterMs`, SIGKILLs it that long after it reports running (startup varies with load). */
export function runJob(url: string, env: Record<string, string>, killAfterMs: number | undefined, job: string, trigger?: KillTrigger): Promise<RunResult> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ["bin/weir.mjs", "run", job, "--nats", url], { env: { ...process.env, ...env }, stdio: ["ignore", "ignore", "pipe"] });
    let stderr = "";
    let killed = false;
    let timer: NodeJS.Timeout | undefined;
    let armed = false;
    const kill = () => { timer = setTimeout(() => { killed = true; child.kill("SIGKILL"); }, killAfterMs); };
    // With a trigger: the delay counts from it (so that the kill tests a recovery however slow or fast
    // the machine is), unless the run ends first.
    const ready = trigger === undefined ? undefined : "when" in trigger ? trigger.when
      : async () => ((await fetchStatus(trigger.nc, trigger.job).catch(() => undefined))?.checkpoints?.completed ?? 0) >= 1;
    // A run whose trigger never comes (a job that never checkpoints, and reads without end) is
    // stopped after a deadline, reported as not killed.
    const killWhenReady = async (): Promise<void> => {
      const deadline = Date.now() + TRIGGER_DEADLINE_MS;
      while (child.exitCode === null) {
        if (await ready!()) return kill();
        if (Date.now() > deadline) { stderr += `\n[no kill trigger within ${TRIGGER_DEADLINE_MS} ms]\n`; child.kill("SIGKILL"); return; }
        await new Promise((r) => setTimeout(r, 20));
      }
    };
    child.stderr.on("data", (d) => {
      stderr += d;
      if (killAfterMs !== undefined && !armed && stderr.includes("weir: running")) {
        armed = true;
        if (ready) void killWhenReady(); else kill();
      }
    });
    child.on("exit", (code) => { if (timer) clearTimeout(timer); resolve({ code, killed, stderr }); });
  });
}

