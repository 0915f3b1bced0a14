// What a job on two workers says on its control subjects while input flows: one checkpoint trigger per
// worker, naming its sources, and one acknowledgement report per worker and checkpoint carrying its
// subtasks' snapshots (actors/worker/ack-batch.ts), not one message per subtask; the checkpoints they
// make complete and the output is exact. Real `weir run` processes on a real nats-server.
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { connect } from "@nats-io/transport-node";
import { withServer } from "./helpers/nats-server.ts";
import { startWeir, eventually, type WeirProcess } from "./helpers/cli.ts";
import { reset, checkOutputExplained, feed, runningOn, status, stopAll } from "./helpers/worker-counts.ts";
import { JobNames } from "../runtime/core/names.ts";
import { decodeCommand, decodeReportText } from "../actors/worker/protocol.ts";
import { MissingReferenceError, PackedReferences } from "../runtime/cluster/packed-json.ts";

const test = suite("workers' control plane");
const nats = withServer(test);
const JOB = "tests/fixtures/jobs/worker-counts.ts";

test("a worker's triggers and acknowledgements: one message per checkpoint each, its subtasks together; output exact", async () => {
  const nc = await connect({ servers: nats.url });
  const procs: WeirProcess[] = [];
  let input: ReturnType<typeof feed> | undefined;
  try {
    await reset(nc);
    const names = new JobNames("workers");
    const env = { WORKERS_CHECKPOINT_MS: "200", WORKERS_BACKEND: "heap", WORKERS_PARALLELISM: "4" };
    procs.push(startWeir(["run", JOB, "--nats", nats.url], { env }), startWeir(["run", JOB, "--nats", nats.url], { env }));
    const running = await runningOn(nc, procs, "the job runs on two workers");
    const follower = running.workers!.find((w) => !w.leader)!;
    const sources = follower.subtasks.filter((id) => id.startsWith("events#")).sort();
    assert.ok(sources.length >= 2 && follower.subtasks.length > sources.length, `the follower runs sources and count subtasks: ${follower.subtasks.join(", ")}`);

    const acks: Array<{ checkpointId: number; subtasks: string[] }> = [];
    const triggers: Array<{ id: number; subtasks: string[] }> = [];
    // Reports are packed against earlier ones (actors/worker/report-packing.ts): read as the leader does.
    const references = new PackedReferences(512);
    let unreadable = 0;
    const reports = nc.subscribe(names.leaderReports, { callback: (_e, m) => {
      let r;
      try {
        const read = decodeReportText(m.data, "report", references);
        references.add(read.text);
        r = read.report;
      } catch (e) {
        if (!(e instanceof MissingReferenceError)) throw e;
        unreadable++; // packed against one sent before this subscription
        return;
      }
      if (r.kind === "ack" && r.worker === follower.id) acks.push({ checkpointId: r.checkpointId, subtasks: r.snapshots.map((s) => `${String(s.vertexUid)}#${String(s.index)}`) });
    } });
    const commands = nc.subscribe(names.workerCommands(follower.id), { callback: (_e, m) => {
      const c = decodeCommand(m.data, "command");
      if (c.kind === "trigger") triggers.push({ id: c.barrier.id, subtasks: [...c.subtasks].sort() });
    } });
    input = feed(nc, 20);
    const before = (await status(nc))?.checkpoints?.completed ?? 0;
    await eventually("10 checkpoints with input", 60_000, async () => (((await status(nc))?.checkpoints?.completed ?? 0) >= before + 10 ? true : undefined));
    reports.unsubscribe();
    commands.unsubscribe();
    const total = await input.stop();
    input = undefined;
    await checkOutputExplained(nc, total, procs);

    assert.ok(triggers.length >= 5, `triggers seen: ${triggers.length}`);
    for (const t of triggers) assert.equal(t.subtasks, sources, `checkpoint ${t.id}'s one trigger names the follower's sources`);
    assert.is(new Set(triggers.map((t) => t.id)).size, triggers.length, "one trigger per checkpoint");
    const snapshots = acks.reduce((n, a) => n + a.subtasks.length, 0);
    assert.ok(acks.length >= 5, `ack reports seen: ${acks.length} (${unreadable} packed against reports sent before the test listened)`);
    // One report per checkpoint while the subtasks acknowledge within 100 ms of each other; a machine
    // loaded enough may split some, never all.
    assert.ok(acks.length < snapshots, `${acks.length} ack reports for ${snapshots} snapshots`);
    for (const a of acks) for (const s of a.subtasks) assert.ok(follower.subtasks.includes(s), `${s} is the follower's`);
  } finally {
    await input?.stop();
    await stopAll(procs);
    await nc.close();
  }
});

test.run();
