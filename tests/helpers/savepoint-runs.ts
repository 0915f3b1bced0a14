// Runs of a job in phases: each stopped with a savepoint once it read so many records (the next run,
// maybe at another parallelism, restores it), the last one run to its end.
import * as assert from "uvu/assert";
import type { JobClient } from "../../mod.ts";

/** Without `stopAfter`: waits until the job finished. With it: stops it with a savepoint once it read that many records. */
export async function finishOrStopWithSavepoint(client: JobClient, stopAfter?: number): Promise<void> {
  if (stopAfter === undefined) {
    assert.is((await client.result()).state, "finished");
    return;
  }
  const deadline = Date.now() + 30_000;
  while (client.status().recordsIn < stopAfter && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
  assert.ok(client.status().recordsIn >= stopAfter, `${stopAfter} records read within 30 s (${client.status().recordsIn})`);
  assert.is((await client.stop({ savepoint: true })).state, "stopped");
}
