// Messages packed against earlier ones (runtime/cluster/packed-json.ts) and a worker's reports packed so
// (actors/worker/report-packing.ts): they unpack to exactly what was sent, are smaller, and a receiver
// without the reference, or with other bytes, gets an error, never another message. Pure logic.
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { MissingReferenceError, packJsonAgainst, PackedReferences, unpackJsonText } from "../runtime/cluster/packed-json.ts";
import { ReportPacker } from "../actors/worker/report-packing.ts";
import { decodeReportText, type WorkerReport } from "../actors/worker/protocol.ts";
import { WeirError } from "../runtime/core/errors.ts";

const s = suite("packing against references");

const status = (recordsIn: number): WorkerReport => {
  // What status.ts reports of a subtask (more fields than the codec checks).
  const subtasks = [
    { id: "events#0", vertex: 0, name: "Source: jetstream", index: 0, state: "running.streaming", recordsIn, recordsOut: recordsIn - 3, isBacklog: false, idleMs: 3140 + recordsIn, busyMs: 329, operators: { "Source: jetstream": { pendingMessages: 0 } } },
    { id: "work#0", vertex: 1, name: "KeyedProcess -> Sink: jetstream", index: 0, state: "running.streaming", recordsIn: recordsIn + 97, recordsOut: recordsIn + 97, isBacklog: false, operators: { KeyedProcess: { recordsIn: recordsIn + 97, cacheEntries: 259, cacheHits: 2 * recordsIn } } },
  ];
  return { kind: "status", epoch: 2, worker: "vm-5983-32d3", subtasks };
};
const ack = (checkpointId: number, seq: number): WorkerReport => ({
  kind: "ack", epoch: 2, worker: "vm-5983-32d3", checkpointId, snapshots: [
    { vertexUid: "events", index: 1, parallelism: 4, operators: { events: { stream: "LIVE", offsets: { "live.1": seq * 11 }, created: "2026-12-06T10:31:55.307171489Z" } }, ackedAtMs: 1796553122112 + checkpointId * 500, alignmentMs: 0, stateChanged: { entries: 0, bytes: 0 } },
    { vertexUid: "work", index: 1, parallelism: 4, operators: { out: { staged: [{ checkpointId, subtask: 1, firstSeq: seq, lastSeq: seq, records: 412 }] } }, keyed: { operators: ["work"], snapshots: [{ checkpointId, kind: "full", keyGroupRange: { start: 32, end: 63 }, changelog: { stream: "weir_cap_changelog", firstSeq: seq * 32, lastSeq: seq * 32 + 31, owner: "work", messages: [[32, seq * 32, -32]] }, entries: 256, bytes: 8682 }] }, ackedAtMs: 1796553122127 + checkpointId * 500, alignmentMs: 2, stateChanged: { entries: 256, bytes: 8682 } },
  ],
});

s("a message packed against an earlier one unpacks exactly, in fewer bytes; without that one it is a MissingReferenceError", () => {
  const first = packJsonAgainst(status(5100), undefined);
  const held = new PackedReferences(4);
  held.add(unpackJsonText(first.data, "status", held).text);
  const next = packJsonAgainst(status(5300), first.text);
  assert.equal(unpackJsonText(next.data, "status", held).value, status(5300));
  assert.ok(next.data.length * 3 < first.data.length * 2, `against ${next.data.length} bytes, alone ${first.data.length}`);
  try {
    unpackJsonText(next.data, "report on weir.j.leader.reports", new PackedReferences(4));
    assert.unreachable("unpacked");
  } catch (e) {
    assert.instance(e, MissingReferenceError);
    assert.match((e as Error).message, /^report on weir\.j\.leader\.reports: packed against a message not held here/);
  }
});

s("a body that does not inflate to the message it was packed as is an error, not another message", () => {
  const first = packJsonAgainst(status(5100), undefined);
  const held = new PackedReferences(4);
  held.add(first.text);
  const next = packJsonAgainst(status(5300), first.text);
  const bent = Uint8Array.from(next.data);
  bent[5] = bent[5]! ^ 0xff; // the message's own CRC
  assert.throws(() => unpackJsonText(bent, "status", held), (e: unknown) => e instanceof WeirError && /inflates to another message/.test((e as Error).message));
  assert.is(held.get(0x12345678), undefined);
});

s("acknowledgements go against the last completed checkpoint's, alone again after an abort or a reset; status reports alone every 5th", () => {
  const packer = new ReportPacker();
  const leader = new PackedReferences(64);
  const read = (data: Uint8Array) => { const r = decodeReportText(data, "report", leader); leader.add(r.text); return r.report; };
  const sizes: number[] = [];
  const a7 = packer.pack(ack(7, 51));
  assert.equal(read(a7), ack(7, 51));
  packer.completed(7);
  for (let id = 8; id < 11; id++) {
    const data = packer.pack(ack(id, 44 + id));
    sizes.push(data.length);
    assert.equal(read(data), ack(id, 44 + id));
    // Against 7's until another completes: a leader holding only 7's unpacks each.
    assert.equal(decodeReportText(data, "report", (() => { const only = new PackedReferences(1); only.add(decodeReportText(a7, "r").text); return only; })()).report, ack(id, 44 + id));
  }
  assert.ok(sizes.every((n) => n * 2 < a7.length), `against ${sizes.join(", ")} bytes, alone ${a7.length}`);
  packer.aborted();
  assert.equal(decodeReportText(packer.pack(ack(11, 60)), "report").report, ack(11, 60), "alone after an abort");
  packer.completed(11);
  packer.reset();
  assert.equal(decodeReportText(packer.pack(ack(12, 61)), "report").report, ack(12, 61), "alone after a reset");

  const alone = (r: WorkerReport) => { try { decodeReportText(packer.pack(r), "report"); return true; } catch (e) { if (e instanceof MissingReferenceError) return false; throw e; } };
  assert.equal([0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10].map((i) => alone(status(5000 + i * 100))), [true, false, false, false, false, true, false, false, false, false, true]);
});

s.run();
