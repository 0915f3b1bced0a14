// `weir checkpoints <job>`: the job's completed checkpoints and savepoints (from its checkpoint bucket),
// and, when the job runs, the one in flight and the last failure.

import { CheckpointStore } from "../../checkpoint/store.ts";
import { summarize } from "../../checkpoint/metadata.ts";
import { JobNames } from "../../core/names.ts";
import { connectNats, resolveNatsConnection } from "../../nats/connect.ts";
import type { NatsFlags } from "../../nats/connection-settings.ts";
import { fetchStatus } from "./control.ts";
import { ErrorCode, WeirError } from "../../core/errors.ts";

export async function checkpointsCommand(job: string, flags: NatsFlags & { json?: boolean }): Promise<number> {
  const nc = await connectNats(await resolveNatsConnection({ flags }), "weir-cli");
  try {
    const store = await CheckpointStore.openExisting(nc, new JobNames(job));
    if (!store) throw new WeirError(ErrorCode.InvalidOption, `job ${job} has no checkpoints on this NATS (no bucket ${new JobNames(job).checkpointBucket}); weir status lists the jobs running`);
    const latest = await store.latest();
    const rows = [];
    for (const id of await store.list()) {
      const m = await store.read(id);
      if (m) rows.push(summarize(m));
    }
    const live = await fetchStatus(nc, job);
    if (flags.json) {
      process.stdout.write(`${JSON.stringify({ latest: latest?.pointer, checkpoints: rows, running: live?.checkpoints }, null, 2)}\n`);
      return 0;
    }
    if (rows.length === 0) process.stdout.write(`${job}: no completed checkpoints\n`);
    for (const r of rows) {
      const mark = latest?.pointer.id === r.id ? " (latest)" : "";
      process.stdout.write(`${r.kind} ${r.id}${mark}: triggered ${new Date(r.triggeredAt).toISOString()}, took ${r.durationMs} ms, state changed ${r.entries} entries / ${r.bytes} bytes, alignment ${r.alignmentMs} ms\n`);
      process.stdout.write(`  acks: ${r.acks.map((a) => `${a.subtask} +${a.afterMs}ms`).join(", ")}\n`);
    }
    if (live?.checkpoints) {
      const c = live.checkpoints;
      process.stdout.write(`running: ${c.completed} completed, ${c.aborted} aborted${c.skipped ? `, ${c.skipped} skipped at rest` : ""}${c.inFlight !== undefined ? `, checkpoint ${c.inFlight} in flight` : ""}${c.lastFailure ? `, last failure: ${c.lastFailure}` : ""}\n`);
    }
    return 0;
  } finally {
    await nc.close();
  }
}
