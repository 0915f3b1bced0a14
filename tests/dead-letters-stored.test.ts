// A checkpoint covers the records it rejected: it is acknowledged only once their dead letters are
// stored, so a crash right after it cannot lose one (the records will not be read again).
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { connect, type NatsConnection } from "@nats-io/transport-node";
import { jetstreamManager } from "@nats-io/jetstream";
import { withServer } from "./helpers/nats-server.ts";
import { DeadLetterPublisher } from "../actors/subtask/dead-letters.ts";
import { SubtaskCheckpointer, type CheckpointParticipant } from "../actors/subtask/checkpointer.ts";
import { JobNames } from "../runtime/core/names.ts";

const s = suite("dead letters stored before a checkpoint's acknowledgement");
const server = withServer(s);
let nc: NatsConnection;
s.before(async () => { nc = await connect({ servers: server.url }); });
s.after(async () => { await nc?.close(); });

s("a subtask's stored() settles once every letter it published is in the dead-letter stream", async () => {
  const publisher = new DeadLetterPublisher(nc, new JobNames("dl1"), () => {});
  const letters = publisher.forSubtask("");
  for (let i = 0; i < 50; i++) letters.publish({ reason: `bad ${i}`, origin: "src#0", data: `{"i":${i}` });
  await letters.stored();
  const info = await (await jetstreamManager(nc)).streams.info(publisher.streamName);
  assert.is(info.state.messages, 50);
});

s("a letter replayed in its lineage is stored once; another record at the same stream sequence (a stream created again) is stored", async () => {
  const publisher = new DeadLetterPublisher(nc, new JobNames("dl2"), () => {});
  const letters = publisher.forSubtask("lineage-1");
  const letter = (data: string) => ({ reason: "invalid JSON", origin: "src#0", stream: "IN", sequence: 5, data });
  letters.publish(letter("{bad"));
  letters.publish(letter("{bad")); // the same record read again after a restore
  letters.publish(letter("oops")); // the stream deleted and created again: its sequence 5 is another record
  await letters.stored();
  const info = await (await jetstreamManager(nc)).streams.info(publisher.streamName);
  assert.is(info.state.messages, 2);
});

s("the checkpointer acknowledges only after the dead letters are stored", async () => {
  let storeLetters!: () => void;
  const letters = new Promise<void>((resolve) => { storeLetters = resolve; });
  const acked: number[] = [];
  let checkpointer!: SubtaskCheckpointer;
  const participant: CheckpointParticipant = {
    vertexUid: "v", index: 0, parallelism: 1, operators: [],
    backend: () => undefined,
    emitBarrier: () => {},
    deadLettersStored: () => letters,
    captureActivity: () => false,
    outputsEnded: () => false,
    block: () => {}, unblock: () => {},
    onPhase: (e) => { if (e.type === "BARRIER_RECEIVED") checkpointer.startSnapshot(e.checkpointId); },
    onAck: (_snapshot, id) => { acked.push(id); },
    onDecline: (id, reason) => { throw new Error(`declined ${id}: ${reason}`); },
    log: () => {},
  };
  checkpointer = new SubtaskCheckpointer(participant, 0);
  await checkpointer.trigger({ id: 1, timestamp: Date.now(), kind: "checkpoint" });
  for (let i = 0; i < 20; i++) await new Promise((r) => setImmediate(r));
  assert.equal(acked, [], "acknowledged while a dead letter was still unstored");
  storeLetters();
  const deadline = Date.now() + 5_000;
  while (acked.length === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 5));
  assert.equal(acked, [1]);
});

s.run();
