// The job of `npm run bench workers`: a CPU-bound keyed count. Events from a JetStream stream (one
// subject per source subtask), keyBy, a fixed amount of integer hashing per record (BENCH_SPIN
// rounds, calibrated by the bench to about 20 µs), a count per key in heap state, and every tenth count
// of a key to the exactly-once JetStream sink (light output traffic). Run as `weir run` worker processes;
// parameters from BENCH_* variables. With BENCH_PROCESSED_DIR set, each build of the job writes how many
// records its process function handled to a file there, so the bench can tell records processed twice.
import { randomUUID } from "node:crypto";
import { rename, writeFile } from "node:fs/promises";
import { join } from "node:path";
import * as t from "io-ts";
import { defineJob, Sinks, Sources, valueState } from "weir";

export const Event = t.type({ id: t.number, key: t.string });
/**
 * One output per this many records of a key (BENCH_EMIT_EVERY, default 10: light output for the
 * throughput figure; the live phase emits every record, so output grows at every checkpoint instead of in
 * bursts whenever the keys reach the next multiple together).
 */
const EMIT_EVERY = Number(process.env.BENCH_EMIT_EVERY ?? 10);
const count = valueState("count", t.number);

/** `rounds` of a multiply-xorshift hash: deterministic CPU work, the same on every worker. */
export function spin(seed: number, rounds: number): number {
  let h = seed | 0;
  for (let i = 0; i < rounds; i++) {
    h = Math.imul(h ^ (h >>> 15), 0x2c1b3c6d);
    h = Math.imul(h ^ (h >>> 12), 0x297a2d39) ^ i;
  }
  return h;
}

const env = process.env;
const rounds = Number(env.BENCH_SPIN ?? 2000);
// Stream names; their subjects are the lower-cased name plus ".0"/".1" (input) or ".<key>" (output).
const input = env.BENCH_IN ?? "IN";
const output = env.BENCH_OUT ?? "OUT";
// 2 for the throughput figure; the bench's join/kill phase uses 4, so that a third worker gets subtasks.
const parallelism = Number(env.BENCH_PARALLELISM ?? 2);

export default defineJob({
  name: env.BENCH_JOB ?? "bench-workers",
  parallelism,
  stateBackend: "heap",
  checkpointIntervalMs: Number(env.BENCH_CHECKPOINT_MS ?? 500),
  ...(env.BENCH_HEARTBEAT_MS ? { heartbeatIntervalMs: Number(env.BENCH_HEARTBEAT_MS), heartbeatTimeoutMs: Number(env.BENCH_HEARTBEAT_TIMEOUT_MS) } : {}),
}, (e) => {
  const processed = { n: 0, written: -1, pending: false, writing: false };
  const dir = env.BENCH_PROCESSED_DIR;
  const file = dir ? join(dir, `${process.pid}-${randomUUID()}`) : undefined;
  // Written 200 ms after a record comes, not on a timer: an interval kept waking each idle worker 5 times a
  // second, which the bench's idle-CPU row counted as weir's. One write at a time, each aside and renamed:
  // two writes into one file at once under load once mixed their digits (924,641 of 500,000 records).
  const write = () => {
    processed.pending = false;
    if (processed.n === processed.written || processed.writing) return;
    processed.writing = true;
    processed.written = processed.n;
    void writeFile(`${file}.tmp`, String(processed.n)).then(() => rename(`${file}.tmp`, file!)).catch(() => {}).finally(() => {
      processed.writing = false;
      if (processed.n !== processed.written) schedule();
    });
  };
  const schedule = () => {
    if (file === undefined || processed.pending) return;
    processed.pending = true;
    setTimeout(write, 200).unref();
  };
  const noteProcessed = () => {
    processed.n++;
    if (!processed.pending) schedule();
  };
  e
    .fromSource(Sources.jetstream({ stream: input, subjects: Array.from({ length: parallelism }, (_, i) => `${input.toLowerCase()}.${i}`), codec: Event }), { uid: "events" })
    .keyBy((x) => x.key)
    .process<{ key: string; n: number; h: number }>({
      async processElement(x, ctx) {
        noteProcessed();
        const h = spin(x.id, rounds);
        const n = ((await ctx.state(count).value()) ?? 0) + 1;
        await ctx.state(count).update(n);
        if (n % EMIT_EVERY === 0) ctx.collect({ key: x.key, n, h });
      },
    }, { uid: "work" })
    .sinkTo(Sinks.jetstream({ stream: output, subject: (o) => `${output.toLowerCase()}.${o.key}` }), { uid: "out" });
});
