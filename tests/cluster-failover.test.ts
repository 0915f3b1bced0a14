// A job on a three-node JetStream cluster with natsReplicas 3 survives server losses: a keyed count and
// event-time windows, both to exactly-once JetStream sinks, continuous input, while (b) each server in
// turn is SIGKILLed and restarted on its store (the JetStream meta leader first), and (c) two of the three
// are down at once (no quorum: the job stalls) and come back. Output must equal the reference: every
// key's counts 1..n once, every closed window once with its exact count. A single server SIGKILLed and
// restarted is tests/nats-restart.test.ts.
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { startCluster, type NatsCluster } from "./helpers/nats-cluster.ts";
import { runWithServerRestarts, type RestartRunResult } from "./helpers/server-restarts.ts";

const s = suite("cluster failover");
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function check(r: RestartRunResult, lines: readonly string[]): void {
  const summary = `published ${r.published}, outputs ${r.outputs}, lost ${r.lost}, duplicated ${r.duplicated}, windows ${JSON.stringify(r.windows)}, job restarts ${r.jobRestarts}, state ${r.jobState}`;
  process.stderr.write(`${summary}\nprogress after each round (ms): ${r.progressMs.join(", ")}\n`);
  const trail = lines.filter((l) => !l.startsWith("  [job]")).concat(lines.filter((l) => l.startsWith("  [job]")).slice(-20)).join("\n");
  assert.is(r.lost, 0, `nothing lost: ${summary}\n${trail}`);
  assert.is(r.duplicated, 0, `nothing duplicated: ${summary}\n${trail}`);
  assert.is(r.outputs, r.published, `one output per input: ${summary}`);
  assert.ok(r.windows && r.windows.fired > 0, `windows fired: ${summary}`);
  assert.equal({ missing: r.windows!.missing, duplicated: r.windows!.duplicated, wrong: r.windows!.wrong }, { missing: 0, duplicated: 0, wrong: 0 }, `every closed window once, exact: ${summary}\n${trail}`);
  assert.ok(r.progressMs.every((ms) => ms !== undefined), `output again after every round: ${r.progressMs.join(", ")}`);
}

async function run(cluster: NatsCluster, rounds: number, disrupt: (round: number) => Promise<number>): Promise<{ r: RestartRunResult; lines: string[] }> {
  const lines: string[] = [];
  const r = await runWithServerRestarts({
    cluster: { url: cluster.urls.join(","), disrupt }, natsReplicas: 3, windows: true,
    restarts: rounds, downMs: 0, ratePerSec: 1000, checkpointIntervalMs: 500, waitMs: 45_000,
    log: (l) => { lines.push(l); if (!l.startsWith("  [job]")) process.stderr.write(`${l}\n`); },
  });
  return { r, lines };
}

s("R3: each server SIGKILLed in turn (meta leader first) and restarted: output exact", async () => {
  const cluster = await startCluster(3);
  try {
    const order: number[] = [];
    const { r, lines } = await run(cluster, 3, async (round) => {
      const victim = round === 0 ? await cluster.metaLeader() : [0, 1, 2].find((i) => !order.includes(i))!;
      order.push(victim);
      process.stderr.write(`round ${round + 1}: SIGKILL s${victim}${round === 0 ? " (meta leader)" : ""}\n`);
      await cluster.kill(victim);
      await sleep(3000);
      await cluster.restart(victim);
      return Date.now();
    });
    check(r, lines);
  } finally {
    await cluster.stop();
  }
});

s("R3: two of three servers down (no quorum), then back: the job stalls, then resumes, output exact", async () => {
  const cluster = await startCluster(3);
  try {
    const { r, lines } = await run(cluster, 1, async () => {
      const leader = await cluster.metaLeader();
      const down = [leader, (leader + 1) % 3];
      process.stderr.write(`SIGKILL s${down[0]} (meta leader) and s${down[1]}\n`);
      await Promise.all(down.map((i) => cluster.kill(i)));
      await sleep(8000);
      for (const i of down) await cluster.restart(i);
      return Date.now();
    });
    check(r, lines);
  } finally {
    await cluster.stop();
  }
});

s.run();
