// The worker protocol's messages (commands, reports, heartbeats) as JSON deflated with a preset
// dictionary: the field names and values every message repeats. A message of a few hundred bytes barely
// shrinks by itself (deflate finds nothing to repeat inside it); with the dictionary a status report
// went from ~560 to ~150 bytes and a keyed subtask's checkpoint acknowledgement from ~470 to ~290
// (`npm run bench workers` counts the control plane's bytes against the data's).
//
// zlib's preset dictionary: RFC 1950 §2.2 (FDICT); deflate may copy from it as from earlier input, and
// strings near its end are the cheapest to refer to, so the most frequent ones come last. A message
// starts with the dictionary's version (one byte instead of zlib's 10 of header and checksums): every
// worker of a job must run the same weir version, and one with another dictionary is refused in one
// line rather than inflated to garbage.

import { deflateRawSync, inflateRawSync } from "node:zlib";
import { ErrorCode, WeirError } from "../core/errors.ts";

/** Message templates with their values left out, rarest first. */
const TEMPLATES = [
  '{"kind":"deploy","leader":"","subtasks":[""],"restoreId":null,"parallelism":null,"clockMs":null}',
  '{"kind":"run","sources":true}{"kind":"stop-sources"}{"kind":"release"}{"kind":"cancel"}{"kind":"regrant"}{"kind":"refuse","reason":""}{"kind":"advance-clock","toMs":}',
  '{"kind":"fail","subtask":"","reason":""}{"kind":"failed","error":""}{"kind":"finished"}{"kind":"input-finished"}{"kind":"dirty-budget"}{"kind":"reconnected"}',
  '{"kind":"decline","reason":""}{"kind":"abort","checkpointId":}',
  '"windowsFired":0,"lateRecordsDropped":0,"openWindows":0,"committedRecords":0,"pendingMessages":0,"error":"","Source: jetstream":{"pendingMessages":0}',
  '"operators":{"KeyedProcess":{"recordsIn":0,"eventTimers":0,"processingTimers":0,"restoredEventTimers":0,"restoredProcessingTimers":0,"timersFired":0,"sortedRecords":0,"sortSpills":0,"backlogBuffered":0,"inFlightRecords":0,"activeBufferSize":0,"blockingBufferSize":0,"blockedKeys":0,"batchesSent":0,"meanBatchSize":0,"batchedRequests":0,"maxInFlightSeen":32,"admittedInFlight":32,"pendingWatermarks":0,"stalled":0,"cacheEntries":0,"cacheBytes":0,"cacheHits":0,"cacheMisses":0,"dirtyEntries":0,"dirtyBytes":0,"cacheEvictions":0,"stateFlushes":0,"stateRemoteReads":0,"stateRemoteWrites":0,"stateWritesFenced":0},"Sink: jetstream":{"committedRecords":0,"recordsOut":0}}}',
  '{"kind":"status","epoch":0,"worker":"","subtasks":[{"id":"","vertex":0,"name":"Source: jetstream","index":0,"state":"running.streaming","recordsIn":0,"recordsOut":0,"watermark":null,"watermarkOut":null,"backpressuredMs":0,"idleMs":0,"busyMs":0,"queuedFrames":0,"pendingFrames":0,"deadLetters":0,"isBacklog":false,"operators":{}}',
  '"keyed":{"operators":[""],"snapshots":[{"checkpointId":0,"kind":"full","keyGroupRange":{"start":0,"end":0},"changelog":{"stream":"","firstSeq":0,"lastSeq":0,"owner":"","messages":[[0,0,-32],[1,1,0]]},"entries":0,"bytes":0}]}',
  '{"kind":"ack","epoch":0,"worker":"","checkpointId":0,"snapshots":[{"vertexUid":"","index":0,"parallelism":0,"operators":{"":{"stream":"","offsets":{"":0},"created":"2026-01-01T00:00:00.000000000Z"},"out":{"staged":[{"checkpointId":0,"subtask":0,"firstSeq":0,"lastSeq":0,"records":0}]}},"ackedAtMs":0,"alignmentMs":0,"stateChanged":{"entries":0,"bytes":0}}]}',
  '{"id":"","host":"","pid":0,"startedAt":"2026-01-01T00:00:00.000Z","epoch":0,"subtasks":["#0","#1"],"identity":{"graph":"","settings":{"parallelism":"auto","maxParallelism":128,"stateBackend":"jetstream-kv","mode":"automatic","checkpointIntervalMs":0,"clock":"system"}},"lagMs":0,"leaving":true}',
  '{"kind":"trigger","epoch":0,"subtasks":[""],"barrier":{"id":0,"timestamp":0,"kind":"checkpoint"},"pause":false}{"kind":"complete","epoch":0,"checkpointId":0}',
];

const DICTIONARY = Buffer.from(TEMPLATES.join(""));
/**
 * The first byte of every packed message: one up with each change of TEMPLATES or of the messages' shapes
 * (0x7b, "{", is plain JSON's). 2: a worker's acknowledgements and triggers per checkpoint, not per subtask.
 */
const PACKED_VERSION = 0x02;

/** `value` as deflated JSON (the protocol's messages: plain data, no undefined at the top). */
export function packJson(value: unknown): Uint8Array {
  const body = deflateRawSync(Buffer.from(JSON.stringify(value)), { dictionary: DICTIONARY });
  const out = Buffer.allocUnsafe(body.length + 1);
  out[0] = PACKED_VERSION;
  body.copy(out, 1);
  return out;
}

/** A packed message's value; a body that is not one (another weir version, another sender) throws one line naming `what`. */
export function unpackJson(data: Uint8Array, what: string): unknown {
  if (data[0] !== PACKED_VERSION) {
    throw new WeirError(ErrorCode.Transport, `${what}: not a packed message of this weir version (${data.length === 0 ? "empty" : data[0] === 0x7b ? "plain JSON" : `version byte ${data[0]}`})`);
  }
  let text: string;
  try {
    text = inflateRawSync(data.subarray(1), { dictionary: DICTIONARY }).toString("utf8");
  } catch (e) {
    throw new WeirError(ErrorCode.Transport, `${what}: not a packed message of this weir version (${(e as Error).message})`, { cause: e });
  }
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new WeirError(ErrorCode.Transport, `${what}: not a packed message of this weir version (it inflates to no JSON)`, { cause: e });
  }
}
