// An idle source's reader is asked to wait long for records (so an idle job does not wake its process 20
// times a second per source), and whatever the subtask must do meanwhile cuts that wait short: a
// checkpoint barrier, a stop, a cancel. The reader here waits for ever unless interrupted, so a job whose
// mail did not interrupt it would hang (each wait below has a deadline). Its wait counts as idle time
// while it lasts.
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { StreamEnvironment, type SourceDef, type SourceReader } from "../mod.ts";
import { IDLE_POLL_WAIT_MS } from "../actors/subtask/source-loop.ts";
import { withServer } from "./helpers/nats-server.ts";
import { eventually, within } from "./helpers/cli.ts";

const test = suite("idle source wait");
const nats = withServer(test);

interface Probe { waits: Array<number | undefined>; interrupts: number; waiting: boolean }

/** Emits `records` numbers, then finds nothing: a short poll sleeps 10 ms, a long one waits for `interrupt`. */
function probeSource(records: number, probe: Probe): SourceDef<number> {
  return {
    kind: "idle-probe",
    bounded: false,
    async createReader(ctx): Promise<SourceReader<number>> {
      let next = ctx.subtaskIndex === 0 ? 0 : records;
      let wake: (() => void) | undefined;
      return {
        async pollNext(_max, maxWaitMs) {
          probe.waits.push(maxWaitMs);
          if (next < records) return { values: [next++] };
          if (maxWaitMs === undefined) {
            await new Promise((r) => setTimeout(r, 10));
          } else {
            probe.waiting = true;
            await new Promise<void>((r) => { wake = r; });
            probe.waiting = false;
          }
          return { values: [] };
        },
        interrupt() {
          probe.interrupts++;
          const w = wake;
          wake = undefined;
          w?.();
        },
        snapshotState: () => next,
        async close() { wake?.(); },
      };
    },
  };
}

const discard = { kind: "discard", createWriter: async () => ({ write: () => {}, flush: async () => {}, close: async () => {} }) } as const;

test("an idle source waits long; checkpoint barriers and a graceful stop cut the wait short", async () => {
  const probe: Probe = { waits: [], interrupts: 0, waiting: false };
  const env = StreamEnvironment.create({ name: "idle-wait", nats: nats.url, parallelism: 1, stateBackend: "heap", checkpointIntervalMs: 100 }, { log: () => {} });
  try {
    env.fromSource(probeSource(5, probe), { name: "probe" }).map((n) => n * 2, { name: "double" }).sinkTo(discard, { name: "out" });
    const client = await env.executeAsync();
    await eventually("a long wait", 20_000, () => probe.waiting || undefined);
    // Only after a poll that found nothing, and then as long as IDLE_POLL_WAIT_MS.
    assert.equal(probe.waits.slice(0, 6), [undefined, undefined, undefined, undefined, undefined, undefined]);
    assert.ok(probe.waits.includes(IDLE_POLL_WAIT_MS), `waits asked: ${probe.waits.slice(0, 10).join(", ")}`);
    // Periodic checkpoints and one asked for complete although the reader would never answer by itself.
    const id = await within(client.triggerCheckpoint(), 30_000);
    assert.ok(id !== undefined && id > 0, "a triggered checkpoint completed within 30 s");
    const interrupted = probe.interrupts;
    assert.ok(interrupted > 0);
    assert.ok(await within(client.stop().then(() => true), 30_000), "a graceful stop within 30 s");
    assert.ok(probe.interrupts > interrupted, "the stop interrupted the wait");
  } finally {
    await env.close();
  }
});

test("a cancel cuts the wait short; the wait counts as idle while it lasts", async () => {
  const probe: Probe = { waits: [], interrupts: 0, waiting: false };
  const env = StreamEnvironment.create({ name: "idle-wait-cancel", nats: nats.url, parallelism: 1, stateBackend: "heap" }, { log: () => {} });
  try {
    env.fromSource(probeSource(3, probe), { name: "probe" }).sinkTo(discard, { name: "out" });
    const client = await env.executeAsync();
    await eventually("a long wait", 20_000, () => probe.waiting || undefined);
    const idleOf = () => client.status().subtasks.find((s) => s.name.includes("probe"))?.idleMs ?? -1;
    const before = idleOf();
    const t0 = performance.now();
    await new Promise((r) => setTimeout(r, 300));
    const waited = performance.now() - t0;
    assert.ok(probe.waiting, "still in the same wait (nothing interrupted it: no mail without checkpoints)");
    assert.ok(idleOf() - before >= waited - 20, `idle grew by ${idleOf() - before} ms over ${Math.round(waited)} ms of waiting`);
    assert.ok(await within(client.cancel().then(() => true), 30_000), "a cancel within 30 s");
  } finally {
    await env.close();
  }
});

test.run();
