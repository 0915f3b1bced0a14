// A follower frozen in the middle of a state materialization (bench/fence.bench.ts): two `weir run`
// workers of the keyed count (tests/fixtures/jobs/worker-counts.ts, checkpoints every 2 s, each one
// materialized into KV at once), 30k keys counted once; the follower is SIGSTOPped while KV is being
// written; the leader takes its key groups, counts every key a second time and materializes that; the
// follower is thawed, rejoins, and every key is counted a third time. A key whose outputs are not 1, 2, 3
// once each had its state set back by a write of the frozen worker that landed after the thaw.
import { connect, type NatsConnection } from "@nats-io/transport-node";
import { jetstream, jetstreamManager } from "@nats-io/jetstream";
import { eventually, startWeir, type WeirProcess } from "./cli.ts";
import { readStream } from "./streams.ts";
import { reset, runningOn, stopAll } from "./worker-counts.ts";
import { JobNames } from "../../runtime/core/names.ts";

const JOB = new URL("../fixtures/jobs/worker-counts.ts", import.meta.url).pathname;
export const KEYS = 30_000;

/** One round: every key once (ids from `r * KEYS`), published with message ids, 1000 in flight. */
async function round(nc: NatsConnection, r: number): Promise<void> {
  const js = jetstream(nc);
  let inflight: Array<Promise<unknown>> = [];
  for (let i = 0; i < KEYS; i++) {
    const id = r * KEYS + i;
    inflight.push(js.publish(`in.${id % 4}`, JSON.stringify({ id, key: `k${i}` }), { msgID: String(id) }));
    if (inflight.length >= 1000) { await Promise.all(inflight); inflight = []; }
  }
  await Promise.all(inflight);
}

type Output = { key: string; n: number };
const outputs = (nc: NatsConnection, n: number): Promise<Output[]> => eventually(`${n} outputs`, 180_000, async () => {
  const out = await readStream<Output>(nc, "OUT");
  return out.length >= n ? out : undefined;
});

/** The state bucket's last stream sequence: it grows with every KV write of the job. */
async function kvLastSeq(nc: NatsConnection): Promise<number> {
  return (await (await jetstreamManager(nc)).streams.info(`KV_${new JobNames("workers").stateBucket}`)).state.last_seq;
}

export interface FrozenMaterializationRun {
  /** Keys whose outputs are not 1, 2, 3 once each. */
  readonly regressedKeys: number;
  /** KV writes in the 700 ms after the thaw (before the rejoin's restore): the frozen worker's. */
  readonly writesAfterThaw: number;
  /** Whether the thawed worker reported a KV write refused as a conflict (state/backends/jetstream-kv/remote-values.ts). */
  readonly conflictReported: boolean;
  /** KV writes before the freeze, and the leader's while the follower was frozen. */
  readonly writesBeforeFreeze: number;
  readonly writesWhileFrozen: number;
}

export async function runFrozenMaterialization(url: string): Promise<FrozenMaterializationRun> {
  const nc = await connect({ servers: url });
  const procs: WeirProcess[] = [];
  try {
    await reset(nc);
    const start = () => startWeir(["run", JOB, "--nats", url], { env: { WORKERS_MATERIALIZE_MS: "0", WORKERS_CHECKPOINT_MS: "2000" } });
    procs.push(start());
    await runningOn(nc, procs, "one worker runs the job");
    procs.push(start());
    const two = await runningOn(nc, procs, "a second worker joined");
    const followerPid = two.workers!.find((w) => !w.leader)!.pid;
    const follower = procs.find((p) => p.child.pid === followerPid)!;
    const leader = procs.find((p) => p !== follower)!;
    // Round one; the follower is frozen once its checkpoint's materialization is under way.
    const before = await kvLastSeq(nc);
    const published = round(nc, 0);
    await eventually("KV writes of round one under way", 120_000, async () => ((await kvLastSeq(nc)) - before >= 3000 ? true : undefined));
    follower.child.kill("SIGSTOP");
    const frozenAt = await kvLastSeq(nc);
    await published;
    await runningOn(nc, [leader], "the leader runs the job alone");
    await outputs(nc, KEYS);
    await round(nc, 1);
    await outputs(nc, 2 * KEYS);
    // The leader's materializations of round two are over once KV stops growing for a second.
    let last = -1;
    await eventually("KV quiet", 60_000, async () => {
      const seq = await kvLastSeq(nc);
      const quiet = seq === last;
      last = seq;
      await new Promise((r) => setTimeout(r, 1000));
      return quiet ? true : undefined;
    });
    follower.child.kill("SIGCONT");
    await new Promise((r) => setTimeout(r, 700));
    const thawed = await kvLastSeq(nc);
    await runningOn(nc, procs, "the thawed worker is a worker of the job again");
    await round(nc, 2);
    await outputs(nc, 3 * KEYS);
    await new Promise((r) => setTimeout(r, 1500)); // late duplicates
    const byKey = new Map<string, number[]>();
    for (const o of await readStream<Output>(nc, "OUT")) byKey.set(o.key, [...(byKey.get(o.key) ?? []), o.n]);
    let regressedKeys = KEYS - byKey.size;
    for (const ns of byKey.values()) if (ns.sort((a, b) => a - b).join() !== "1,2,3") regressedKeys++;
    const conflictReported = /was written by another writer/.test(follower.stderr() + follower.stdout());
    return { regressedKeys, writesAfterThaw: thawed - last, writesBeforeFreeze: frozenAt - before, writesWhileFrozen: last - frozenAt, conflictReported };
  } finally {
    await stopAll(procs);
    await nc.close();
  }
}
