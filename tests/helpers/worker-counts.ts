// The workers tests' job (tests/fixtures/jobs/worker-counts.ts, job "workers"): input for it, its output
// checked against the reference, and waits on its status. Used by tests/workers and tests/workers-cluster.
import * as assert from "uvu/assert";
import { connect, type NatsConnection } from "@nats-io/transport-node";
import { jetstream, jetstreamManager } from "@nats-io/jetstream";
import { idRanges, readStream } from "./streams.ts";
import { eventually, killWeir, type WeirProcess } from "./cli.ts";
import { fetchStatus } from "../../runtime/cli/commands/control.ts";
import type { JobStatus, WorkerSummary } from "../../actors/job/job-status.ts";

export const KEYS = 37;

interface Event { id: number; key: string }

/**
 * Input arriving in the background, a batch every 100 ms, until stopped. Each event is published with its
 * id as the message id and a batch that failed (a server down, a stream leader being elected) is sent
 * again until stored: the stream's duplicate window keeps a retried event once.
 */
export function feed(nc: NatsConnection, perBatch: number): { stop(): Promise<number> } {
  const js = jetstream(nc);
  let id = 0;
  let running = true;
  const publish = (e: Event) => js.publish(`in.${e.id % 4}`, JSON.stringify(e), { msgID: String(e.id) });
  const loop: Promise<void> = (async () => {
    while (running) {
      const batch: Event[] = [];
      for (let i = 0; i < perBatch; i++, id++) batch.push({ id, key: `k${(id * 7) % KEYS}` });
      for (let attempt = 0; ; attempt++) {
        try {
          await Promise.all(batch.map(publish));
          break;
        } catch (e) {
          if (attempt >= 300) throw e;
          await new Promise((r) => setTimeout(r, 200));
        }
      }
      await new Promise((r) => setTimeout(r, 100));
    }
  })();
  loop.catch(() => {});
  return { stop: async () => { running = false; await loop; return id; } };
}

export async function reset(nc: NatsConnection, replicas = 1): Promise<void> {
  const jsm = await jetstreamManager(nc);
  for (const s of (await jsm.streams.names().next())) if (s === "IN" || s === "OUT" || s.includes("_workers")) await jsm.streams.delete(s);
  await jsm.streams.add({ name: "IN", subjects: ["in.*"], num_replicas: replicas });
}

/**
 * The reference: counts per key over the input as stored. A publish retried after a stream leader was
 * killed can be stored twice by nats-server 2.9.10 although it carries a message id (a new leader took
 * writes before it had applied the old leader's last ones: fixed in 2.11, nats-server#6486), and the
 * job rightly counts both; so a stored duplicate is named here and kept in the reference.
 */
async function storedInput(nc: NatsConnection, total: number): Promise<Map<string, number>> {
  const stored = await readStream<Event>(nc, "IN");
  const times = new Map<number, number>();
  for (const e of stored) times.set(e.id, (times.get(e.id) ?? 0) + 1);
  const twice = [...times].filter(([, n]) => n > 1).map(([id]) => id);
  const missing = Array.from({ length: total }, (_, id) => id).filter((id) => !times.has(id));
  if (twice.length > 0 || missing.length > 0 || stored.length !== total) {
    console.log(`  input as stored: ${stored.length} messages for ${total} ids published; ${twice.length} ids stored more than once (${twice.slice(0, 20).join(", ")}), ${missing.length} missing (${missing.slice(0, 20).join(", ")})`);
  }
  const expected = new Map<string, number>();
  for (const e of stored) expected.set(e.key, (expected.get(e.key) ?? 0) + 1);
  return expected;
}

interface Output { key: string; n: number; id: number }

/**
 * The input ids that more than one output counts, as ranges per subject (id % 4): a stretch of one
 * subject points at a source reading it again over state that had counted it, spread over all at state.
 */
function idsCountedTwice(out: readonly Output[]): string[] {
  const times = new Map<number, number>();
  for (const o of out) times.set(o.id, (times.get(o.id) ?? 0) + 1);
  const bySubject: string[] = [];
  for (let subject = 0; subject < 4; subject++) {
    const ids = [...times].filter(([id, n]) => n > 1 && id % 4 === subject).map(([id]) => id).sort((a, b) => a - b);
    const ranges = idRanges(ids, 4);
    if (ranges.length > 0) bySubject.push(`in.${subject}: ${ranges.slice(0, 10).join(", ")}${ranges.length > 10 ? ` (${ranges.length} ranges, ${ids.length} ids)` : ` (${ids.length} ids)`}`);
  }
  return bySubject;
}

/** Waits until the output holds one count per input and checks it against the reference exactly. */
export async function checkOutput(nc: NatsConnection, total: number): Promise<void> {
  const expected = await storedInput(nc, total);
  total = [...expected.values()].reduce((a, b) => a + b, 0);
  let out: Output[] = [];
  await eventually(`all ${total} outputs`, 120_000, async () => {
    out = await readStream(nc, "OUT");
    return out.length >= total ? true : undefined;
  });
  // Duplicates would arrive late: wait one more checkpoint round before judging.
  await new Promise((r) => setTimeout(r, 1500));
  out = await readStream(nc, "OUT");
  const seen = new Map<string, number[]>();
  for (const o of out) seen.set(o.key, [...(seen.get(o.key) ?? []), o.n]);
  const countedTwice = idsCountedTwice(out);
  if (countedTwice.length > 0) console.log(`  input ids counted more than once (ranges by subject in.0..in.3): ${countedTwice.join("; ")}`);
  for (const [key, n] of expected) {
    assert.equal((seen.get(key) ?? []).sort((a, b) => a - b), Array.from({ length: n }, (_, i) => i + 1), `key ${key}: counts 1..${n}, each exactly once`);
  }
  assert.is(out.length, total, "one output per input: none lost, none duplicated");
}

export async function status(nc: NatsConnection): Promise<JobStatus | undefined> {
  return fetchStatus(nc, "workers").catch(() => undefined);
}

/** The job's status once it runs on two workers, each with subtasks (`weir run --workers 2`). */
export function runningOnTwoWorkers(nc: NatsConnection): Promise<JobStatus> {
  return eventually("the job runs on two workers", 90_000, async () => {
    const st = await status(nc);
    return st?.state === "running" && st.workers?.length === 2 && st.workers.every((w) => w.subtasks.length > 0) ? st : undefined;
  });
}

/** Waits until the job runs with exactly these workers (by pid), each with subtasks if there are enough. */
export async function runningOn(nc: NatsConnection, procs: readonly WeirProcess[], what: string): Promise<JobStatus> {
  const pids = procs.map((p) => p.child.pid!).sort();
  let last: JobStatus | undefined;
  try {
    return await eventually(what, 90_000, async () => {
      const s = (last = await status(nc));
      const ws: readonly WorkerSummary[] = s?.workers ?? [];
      const live = ws.map((w) => w.pid).sort();
      if (s?.state === "running" && live.join() === pids.join() && ws.every((w) => w.subtasks.length > 0)) return s;
      return undefined;
    });
  } catch (e) {
    // What a user would look at: the status last seen and each expected worker's last log lines.
    const seen = last ? `${last.state}, workers ${JSON.stringify(last.workers?.map((w) => ({ pid: w.pid, subtasks: w.subtasks.length, leader: w.leader })))}` : "no status";
    const logs = procs.map((p) => `--- pid ${p.child.pid}:\n${p.stderr().slice(-1500)}`).join("\n");
    throw new Error(`${(e as Error).message}; expected pids ${pids.join()}, last status: ${seen}\n${logs}`);
  }
}

export async function stopAll(procs: Iterable<WeirProcess>): Promise<void> {
  for (const p of procs) if (p.child.exitCode === null) killWeir(p);
  await Promise.all([...procs].map((p) => p.exited));
}

/** What a test of the job gets from withInput: its connection, the worker processes it starts (killed at the end), the input's stop. */
export interface FedRun { readonly nc: NatsConnection; readonly procs: WeirProcess[]; stopInput(): Promise<number> }

/** Fresh streams, input arriving in the background (`perBatch` events a batch), and at the end every worker killed and the connection closed. */
export async function withInput(url: string, perBatch: number, body: (run: FedRun) => Promise<void>): Promise<void> {
  const nc = await connect({ servers: url });
  const procs: WeirProcess[] = [];
  let input: ReturnType<typeof feed> | undefined;
  try {
    await reset(nc);
    input = feed(nc, perBatch);
    await body({ nc, procs, stopInput: async () => { const total = await input!.stop(); input = undefined; return total; } });
  } finally {
    await input?.stop().catch(() => {});
    await stopAll(procs);
    await nc.close().catch(() => {});
  }
}

/**
 * checkOutput, and when it fails, what each worker said about restarts, restores and leadership (the
 * lines a reader needs to tell which run restored what), before the failure is thrown on.
 */
export async function checkOutputExplained(nc: NatsConnection, total: number, procs: readonly WeirProcess[]): Promise<void> {
  try {
    await checkOutput(nc, total);
  } catch (e) {
    procs.forEach((p, i) => {
      const lines = p.stderr().split("\n").filter((l) => /restor|restart|taking over|lead|epoch|fail|behind|refused|aborted|declined/i.test(l));
      console.log(`  worker ${i} (${lines.length} such lines, the last 40):\n${lines.slice(-40).map((l) => `    ${l.slice(0, 300)}`).join("\n")}`);
    });
    throw e;
  }
}
