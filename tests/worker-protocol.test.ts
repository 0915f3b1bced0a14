// The worker protocol's messages on the wire (actors/worker/protocol.ts, runtime/cluster/packed-json.ts):
// they round-trip, they are packed (the control plane's bytes are a measured goal: bench/workers.bench.ts),
// and a message that is not a packed one of this version, or one with a wrong field, is one clear line.
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { decodeCommand, decodeReport, encodeCommand, encodeReport, type WorkerCommand, type WorkerReport } from "../actors/worker/protocol.ts";
import { packJson, unpackJson } from "../runtime/cluster/packed-json.ts";
import { WeirError } from "../runtime/core/errors.ts";

const s = suite("worker protocol on the wire");

const subtask = (id: string, recordsIn: number) => ({
  id, vertex: 1, name: "KeyedProcess -> Sink: jetstream", index: 0, state: "running.streaming", recordsIn, recordsOut: recordsIn,
  watermark: null, watermarkOut: null, backpressuredMs: 0, idleMs: 10514, busyMs: 219, queuedFrames: 0, pendingFrames: 0, deadLetters: 0, isBacklog: false,
  operators: { KeyedProcess: { recordsIn, eventTimers: 0, processingTimers: 0, timersFired: 0, inFlightRecords: 0, cacheEntries: 256, cacheHits: 10650, cacheMisses: 0 } },
});

s("a status report and a trigger round-trip, packed to well under their JSON", () => {
  const report: WorkerReport = { kind: "status", epoch: 3, worker: "vm-1592-c770", subtasks: [subtask("events#1", 5200), subtask("work#1", 5325)] };
  const packed = encodeReport(report);
  assert.equal(decodeReport(packed, "report"), report);
  const json = JSON.stringify(report).length;
  assert.ok(packed.length * 3 < json, `packed ${packed.length} bytes, JSON ${json}`);

  const trigger: WorkerCommand = { kind: "trigger", epoch: 3, subtask: "events#1", barrier: { id: 37, timestamp: 1796498848471, kind: "checkpoint" }, pause: false };
  assert.equal(decodeCommand(encodeCommand(trigger), "command"), trigger);
});

s("plain JSON (another weir version, another sender) is refused in one line naming the message", () => {
  const plain = new TextEncoder().encode(JSON.stringify({ kind: "complete", epoch: 1, checkpointId: 2 }));
  try {
    decodeCommand(plain, "command to worker w1");
    assert.unreachable("decoded");
  } catch (e) {
    assert.instance(e, WeirError);
    assert.match((e as Error).message, /^command to worker w1: not a packed message of this weir version/);
    assert.not.match((e as Error).message, /\n/);
  }
  assert.throws(() => unpackJson(packJson("x").subarray(0, 2), "heartbeat"), /heartbeat: not a packed message/);
  // Another dictionary's messages (another version byte) are refused before they are inflated.
  const other = packJson({ kind: "complete", epoch: 1, checkpointId: 2 });
  other[0] = 2;
  assert.throws(() => decodeCommand(other, "command"), /command: not a packed message of this weir version \(version byte 2\)/);
});

s("a packed message with a field of the wrong type names the field", () => {
  try {
    decodeReport(packJson({ kind: "ack", epoch: 1, worker: "w", subtask: "a#0", checkpointId: "seven", snapshot: {} }), "report on weir.j.leader.reports");
    assert.unreachable("decoded");
  } catch (e) {
    assert.match((e as Error).message, /report on weir\.j\.leader\.reports/);
    assert.match((e as Error).message, /checkpointId/);
  }
});

s.run();
