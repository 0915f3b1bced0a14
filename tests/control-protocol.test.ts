// The control protocol's codecs (what `weir status`, `weir stop` and the scenario runner exchange with a
// job), and one round trip through a real NATS server: a bad message is one line naming the field.
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { connect } from "@nats-io/transport-node";
import { ControlProtocol, ControlVerb, JobEnded, decodeMessage, decodeReply, decodeSubtaskReport, isFailureReport } from "../actors/job/control-protocol.ts";
import { requestControl } from "../actors/job/control-client.ts";
import { handlersFor, serveControl } from "../actors/job/control-server.ts";
import type { JobStatus } from "../actors/job/job-status.ts";
import { JobNames } from "../runtime/core/names.ts";
import { ManualClock, systemClock } from "../runtime/core/clock.ts";
import { withServer } from "./helpers/nats-server.ts";

const bytes = (v: unknown) => new TextEncoder().encode(JSON.stringify(v));
const codecs = suite("control protocol codecs");

function throwsLine(f: () => unknown, ...parts: string[]): void {
  try {
    f();
  } catch (e) {
    const m = (e as Error).message;
    assert.not.match(m, "\n", "one line");
    for (const p of parts) assert.ok(m.includes(p), `"${m}" names ${p}`);
    return;
  }
  assert.unreachable("expected a decode error");
}

codecs("verbs are the subjects' last token", () => {
  assert.equal(Object.values(ControlVerb).sort(), ["advance-clock", "cancel", "checkpoint", "fail-subtask", "status", "stop"]);
  assert.is(new JobNames("j").control(ControlVerb.FailSubtask), "weir.j.ctl.fail-subtask");
  assert.equal(Object.keys(ControlProtocol).sort(), Object.values(ControlVerb).sort(), "every verb has a request and a reply codec");
});

codecs("requests: empty bodies, optional fields, and exact shapes", () => {
  assert.equal(decodeMessage(ControlProtocol.stop.request, new Uint8Array(), "stop"), {});
  assert.equal(decodeMessage(ControlProtocol.stop.request, bytes({ savepoint: true }), "stop"), { savepoint: true });
  assert.equal(decodeMessage(ControlProtocol["fail-subtask"].request, bytes({ subtask: "in#0" }), "x"), { subtask: "in#0" });
  throwsLine(() => decodeMessage(ControlProtocol.stop.request, bytes({ savepoint: "yes" }), "request on weir.j.ctl.stop"), "weir.j.ctl.stop", "savepoint", "boolean", "yes");
  throwsLine(() => decodeMessage(ControlProtocol.stop.request, bytes({ savepont: true }), "stop"), "savepont", "savepoint");
  throwsLine(() => decodeMessage(ControlProtocol["fail-subtask"].request, bytes({}), "fail-subtask"), "subtask");
  throwsLine(() => decodeMessage(ControlProtocol.status.request, new TextEncoder().encode("{nope"), "status"), "not JSON");
});

codecs("replies: acks, failure reports, status and the end announcement", () => {
  assert.equal(decodeReply(ControlVerb.Stop, bytes({ ok: true, state: "stopping" }), "j"), { ok: true, state: "stopping" });
  const report = decodeReply(ControlVerb.Checkpoint, bytes({ error: "checkpoints are off" }), "j");
  assert.ok(isFailureReport(report));
  throwsLine(() => decodeReply(ControlVerb.Stop, bytes({ ok: true, state: "sleeping" }), "j"), "reply to stop", "state", "sleeping");
  throwsLine(() => decodeReply(ControlVerb.Status, bytes({ job: "j", state: "running" }), "j"), "reply to status", "attempt");
  assert.equal(decodeMessage(JobEnded, bytes({ job: "j", state: "failed", attempt: "a1", failure: "boom" }), "end"), { job: "j", state: "failed", attempt: "a1", failure: "boom" });
  throwsLine(() => decodeMessage(JobEnded, bytes({ job: "j", attempt: "a1" }), "job j's end announcement"), "end announcement", "state");
});

codecs("a checkpoint asked for while the job restarts is refused at once, not left pending until its timeout", async () => {
  let asked = 0;
  const job = (state: "running" | "restarting") => handlersFor({
    state, checkpointing: true, status: () => ({}) as JobStatus, stop: async () => undefined, cancel: async () => undefined,
    triggerCheckpoint: async () => ++asked, failSubtask: () => false, clock: systemClock,
  });
  assert.equal(await job("restarting").checkpoint({}), { ok: false, error: "the job is restarting: a checkpoint can be taken once it runs again" });
  assert.is(asked, 0);
  assert.equal(await job("running").checkpoint({}), { ok: true });
  assert.is(asked, 1);
});

const overNats = suite("control protocol over NATS");
codecs("subtask reports: checked against the codec of their kind", () => {
  const snapshot = { vertexUid: "v", index: 0, parallelism: 1, operators: {}, ackedAtMs: 5, alignmentMs: 0, stateChanged: { entries: 0, bytes: 0 } };
  assert.equal(decodeSubtaskReport(bytes({ kind: "ack", subtask: "v#0", checkpointId: 3, snapshot }), "r"), { kind: "ack", subtask: "v#0", checkpointId: 3, snapshot });
  assert.equal(decodeSubtaskReport(bytes({ kind: "failed", subtask: "v#0", error: "boom" }), "r").kind, "failed");
  throwsLine(() => decodeSubtaskReport(bytes({ kind: "ack", subtask: "v#0", checkpointId: "3", snapshot }), "report"), "checkpointId", "3");
  throwsLine(() => decodeSubtaskReport(bytes({ kind: "nack", subtask: "v#0" }), "report"), "kind", "nack", "decline");
});

const nats = withServer(overNats);

overNats("a job's handlers answer typed requests; a bad request is answered with a one-line failure report", async () => {
  const nc = await connect({ servers: nats.url });
  try {
    const failed: string[] = [];
    const status = { job: "pj", state: "running", attempt: "a", startedAt: new Date(0).toISOString(), uptimeMs: 1, parallelism: 1, recordsIn: 0, recordsOut: 0, deadLetters: 0, restarts: 0, restartStrategy: "none", failures: [], subtasks: [] } as unknown as JobStatus;
    const subs = serveControl(nc, new JobNames("pj"), handlersFor({
      state: "running",
      checkpointing: false,
      status: () => status,
      stop: async () => undefined,
      cancel: async () => undefined,
      triggerCheckpoint: async () => 1,
      failSubtask: (id) => { failed.push(id); return id === "in#0"; },
      clock: systemClock,
    }), () => ({ job: "pj", state: "running", attempt: "a", startedAt: status.startedAt }));
    try {
      await nc.flush();
      assert.equal(await requestControl(nc, "pj", ControlVerb.FailSubtask, { subtask: "in#0" }), { ok: true });
      assert.equal(await requestControl(nc, "pj", ControlVerb.FailSubtask, { subtask: "nope#9" }), { ok: false });
      assert.equal(failed, ["in#0", "nope#9"]);
      assert.equal(await requestControl(nc, "pj", ControlVerb.Stop, { savepoint: true }), { ok: false, error: "stop --savepoint needs checkpointing (checkpointIntervalMs)" });
      assert.is((await requestControl(nc, "pj", ControlVerb.Status, {}))?.state, "running");
      // A client of another version sends a field this job does not know: one line back, naming it.
      const raw = await nc.request("weir.pj.ctl.fail-subtask", JSON.stringify({ subtask: "in#0", force: true }), { timeout: 5_000 });
      const answer = raw.json<{ error: string }>();
      assert.ok(answer.error.includes("force") && !answer.error.includes("\n"), answer.error);
      assert.equal(failed, ["in#0", "nope#9"], "a bad request does nothing");
      assert.is(await requestControl(nc, "nobody", ControlVerb.Status, {}, 500), undefined, "no job: no answer");
    } finally {
      for (const s of subs) s.unsubscribe();
    }
  } finally {
    await nc.close();
  }
});

overNats("advance-clock moves a manual clock (its due timers fire on the way) and is refused on the system clock", async () => {
  const nc = await connect({ servers: nats.url });
  try {
    const job = (clock: ManualClock | typeof systemClock) => handlersFor({
      state: "running", checkpointing: false, status: () => ({}) as JobStatus, stop: async () => undefined, cancel: async () => undefined,
      triggerCheckpoint: async () => 1, failSubtask: () => false, clock,
    });
    const clock = new ManualClock(1_000);
    const fired: number[] = [];
    clock.setTimeout(() => fired.push(clock.now()), 3_600_000);
    const ping = () => ({ job: "x", state: "running" as const, attempt: "a", startedAt: new Date(0).toISOString() });
    const subs = [...serveControl(nc, new JobNames("manual"), job(clock), ping), ...serveControl(nc, new JobNames("wall"), job(systemClock), ping)];
    try {
      await nc.flush();
      assert.equal(await requestControl(nc, "manual", ControlVerb.AdvanceClock, { ms: 3_599_999 }), { ok: true, now: 3_600_999 });
      assert.equal(fired, [], "not due yet");
      assert.equal(await requestControl(nc, "manual", ControlVerb.AdvanceClock, { ms: 60_000 }), { ok: true, now: 3_660_999 });
      assert.equal(fired, [3_601_000], "fired at its own time, once");
      const negative = await requestControl(nc, "manual", ControlVerb.AdvanceClock, { ms: -5 });
      assert.is(negative?.ok, false);
      assert.ok(negative?.error?.includes("ms") && negative.error.includes("-5"), negative?.error);
      const wall = await requestControl(nc, "wall", ControlVerb.AdvanceClock, { ms: 1 });
      assert.is(wall?.ok, false);
      assert.ok(wall?.error?.includes("--manual-clock"), wall?.error);
    } finally {
      for (const s of subs) s.unsubscribe();
    }
  } finally {
    await nc.close();
  }
});

codecs.run();
overNats.run();
