// The worker protocol's messages on the wire (actors/worker/protocol.ts, runtime/cluster/packed-json.ts):
// they round-trip, they are packed (the control plane's bytes are a measured goal: bench/workers.bench.ts),
// and a message that is not a packed one of this version, or one with a wrong field, is one clear line.
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { decodeCommand, decodeReport, encodeCommand, encodeReport, type WorkerCommand, type WorkerReport } from "../actors/worker/protocol.ts";
import { packJson, unpackJson } from "../runtime/cluster/packed-json.ts";
import { WeirError } from "../runtime/core/errors.ts";
import type { SubtaskSnapshot } from "../runtime/checkpoint/metadata.ts";
import { packMessages, packSnapshot, unpackMessages, unpackSnapshot } from "../actors/worker/snapshot-wire.ts";

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

  const trigger: WorkerCommand = { kind: "trigger", epoch: 3, subtasks: ["events#1", "events#3"], barrier: { id: 37, timestamp: 1796498848471, kind: "checkpoint" }, pause: false };
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
  other[0] = 1;
  assert.throws(() => decodeCommand(other, "command"), /command: not a packed message of this weir version \(version byte 1\)/);
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

/** A keyed subtask's snapshot as a heap backend acknowledges it: one changelog message per key group, consecutive. */
const keyedSnapshot = (index: number, start: number, firstSeq: number): SubtaskSnapshot => ({
  vertexUid: "work", index, parallelism: 4, operators: { out: { staged: [{ checkpointId: 7, subtask: index, firstSeq: 49, lastSeq: 49, records: 365 }] } },
  keyed: {
    operators: ["work"],
    snapshots: [{
      checkpointId: 7, kind: "full", keyGroupRange: { start, end: start + 31 }, entries: 226, bytes: 7662,
      changelog: { stream: "weir_cap_changelog", firstSeq, lastSeq: firstSeq + 31, owner: "work", messages: Array.from({ length: 32 }, (_, i) => [start + i, firstSeq + i] as const) },
    }],
  },
  ackedAtMs: 1796552559653, alignmentMs: 3, stateChanged: { entries: 226, bytes: 7662 },
});

s("changelog messages travel as runs; messages with their writing checkpoint stay as they are, in order", () => {
  const messages = [[0, 10], [1, 11], [2, 12], [3, 40, 5], [4, 13], [5, 14], [7, 15], [8, 41, 6], [9, 42, 6]] as const;
  const packed = packMessages(messages);
  assert.equal(packed, [[0, 10, -3], [3, 40, 5], [4, 13, -2], [7, 15], [8, 41, 6], [9, 42, 6]]);
  assert.equal(unpackMessages(packed), messages.map((m) => [...m]));
  assert.equal(packMessages([]), []);
});

s("a worker's acknowledgement of two keyed subtasks: one report, its snapshots restored exactly, far smaller than one report each", () => {
  const snapshots = [keyedSnapshot(0, 0, 769), keyedSnapshot(3, 96, 801)];
  const report: WorkerReport = { kind: "ack", epoch: 2, worker: "vm-27263-d10f", checkpointId: 7, snapshots: snapshots.map((x) => packSnapshot(x) as unknown as Record<string, unknown>) };
  const packed = encodeReport(report);
  const decoded = decodeReport(packed, "report");
  assert.equal(decoded.kind === "ack" ? decoded.snapshots.map((x) => unpackSnapshot(x as unknown as SubtaskSnapshot)) : [], snapshots);
  // What one report per subtask with the messages listed one by one came to (the protocol before).
  const oneEach = snapshots.map((x) => packJson({ kind: "ack", epoch: 2, worker: "vm-27263-d10f", subtask: `work#${x.index}`, checkpointId: 7, snapshot: x }).length).reduce((a, b) => a + b, 0);
  assert.ok(packed.length * 2 < oneEach, `one report ${packed.length} bytes, one per subtask ${oneEach}`);
});

s.run();
