// A worker's host refuses the commands of its epoch while it has had no word from the leader for a lease
// (it may have been replaced). Most commands, a checkpoint's trigger among them, are sent without a
// reply: a refusal the worker kept to itself cost a checkpoint timeout (60 s) when the leader came back
// just before the worker's next look at it (scenarios/workers.scenario.yaml, a leader frozen ~5 s). So a
// refusal is reported to the worker (which then leaves the epoch and is placed anew).
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { connect } from "@nats-io/transport-node";
import { withServer } from "./helpers/nats-server.ts";
import { WorkerHost, type WorkerHostOptions } from "../actors/worker/worker-host.ts";
import { decodeCommandReply, encodeCommand, type WorkerCommand } from "../actors/worker/protocol.ts";
import { DeadLetterPublisher } from "../actors/subtask/dead-letters.ts";
import { JobNames } from "../runtime/core/names.ts";

const test = suite("worker host");
const nats = withServer(test);

test("a command refused for a stale leader is reported, so the worker can leave the epoch", async () => {
  const nc = await connect({ servers: nats.url });
  const names = new JobNames("host-refusal");
  let fresh = true;
  const refused: string[] = [];
  // An epoch with no subtasks of this worker: graph, dependencies and restores are never reached.
  const host = new WorkerHost({
    workerId: "w1", nc, names, graph: { vertices: [] } as unknown as WorkerHostOptions["graph"], deps: {} as WorkerHostOptions["deps"],
    deadLetters: new DeadLetterPublisher(nc, names, () => {}), loadRestore: async () => undefined,
    mayAct: () => fresh, log: () => {}, onRefused: (reason) => refused.push(reason),
  });
  host.start();
  const send = async (command: WorkerCommand) =>
    decodeCommandReply((await nc.request(names.workerCommands("w1"), encodeCommand(command), { timeout: 10_000 })).data, "reply");
  const trigger: WorkerCommand = { kind: "trigger", epoch: 3, subtasks: ["a#0"], barrier: { id: 7, timestamp: 0, kind: "checkpoint" }, pause: false };
  try {
    assert.ok((await send({ kind: "deploy", epoch: 3, leader: "w0", subtasks: [], restoreId: null, lineage: "", parallelism: null, clockMs: null })).ok, "deployed");
    assert.ok((await send(trigger)).ok, "a fresh leader's trigger is taken");
    assert.equal(refused, []);
    fresh = false;
    const reply = await send(trigger);
    assert.not.ok(reply.ok, "a stale leader's trigger is refused");
    assert.match(reply.error ?? "", /fenced off epoch 3/);
    assert.equal(refused.length, 1, "the refusal is reported to the worker");
    assert.match(refused[0]!, /"trigger" of epoch 3/);
  } finally {
    host.stop();
    await nc.close();
  }
});

test.run();
