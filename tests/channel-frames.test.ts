// How a channel's producer cuts records into frames, on a real nats-server: records that wait for credit
// are cut at the size the consumer asks for when the credit comes, not at the size it asked for before
// (a consumer's first grant asks for 4 records a frame: it has measured nothing yet).
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { connect, type NatsConnection } from "@nats-io/transport-node";
import { withServer } from "./helpers/nats-server.ts";
import { ChannelWriter } from "../runtime/transport/channel-writer.ts";
import { decodeFrame } from "../runtime/transport/frames.ts";

const s = suite("channel frames");
const nats = withServer(s);

/** A writer on `subject` and the sizes of the record frames published on it, in order. */
async function withWriter(subject: string, frameSize: number, f: (writer: ChannelWriter, sizes: number[], drained: () => number, nc: NatsConnection) => Promise<void>): Promise<void> {
  const nc = await connect({ servers: nats.url });
  let drainedCalls = 0;
  const sizes: number[] = [];
  const sub = nc.subscribe(subject, {
    callback: (_e, m) => {
      const frame = decodeFrame(m.data);
      if (frame.k === "r") sizes.push(frame.v.length);
    },
  });
  try {
    await nc.flush();
    await f(new ChannelWriter(nc, subject, frameSize, 1024 * 1024, () => { drainedCalls++; }), sizes, () => drainedCalls, nc);
  } finally {
    sub.unsubscribe();
    await nc.close();
  }
}

/** Waits until `n` frames came (a deadline bounds the wait). */
async function frames(sizes: number[], n: number, nc: NatsConnection): Promise<number[]> {
  await nc.flush();
  const deadline = Date.now() + 5000;
  while (sizes.length < n && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
  return sizes;
}

s("a burst made while the channel had no credit goes out in frames of the size the next grant asks for", () => withWriter("frames.a", 500, async (writer, sizes, drained, nc) => {
  writer.grant(1, 4); // the consumer's first grant: one frame of 4 records
  for (let i = 0; i < 1000; i++) writer.add({ k: `key-${i}`, v: i }, undefined);
  assert.ok(writer.backlog > 0, "records wait for credit: the subtask stops taking input");
  assert.is(writer.sendableRecords, 0);
  writer.grant(10, 250); // the consumer measured a fast rate: frames of 250
  assert.is(drained(), 1, "the loop waiting for credit is told");
  writer.seal(); // the subtask's flush: the rest goes as a partly filled frame
  assert.equal(await frames(sizes, 5, nc), [4, 250, 250, 250, 246]);
  assert.is(writer.recordsSent, 1000);
  assert.is(writer.backlog, 0);
}));

s("a frame size raised past what waits unsealed: the waiting loop is told, though no frame was cut", () => withWriter("frames.b", 500, async (writer, sizes, drained, nc) => {
  writer.grant(1, 4);
  for (let i = 0; i < 10; i++) writer.add(i, undefined);
  assert.is(writer.backlog, 1); // 4 sent; 6 wait, a full frame of 4 among them
  writer.grant(3, 100); // 6 records are less than a frame of 100: nothing to send yet, nothing to wait for
  assert.is(writer.backlog, 0);
  assert.is(drained(), 1);
  writer.seal();
  assert.equal(await frames(sizes, 2, nc), [4, 6]);
}));

s("a grant that only makes frames smaller cuts what waits unsealed at the new size", () => withWriter("frames.c", 500, async (writer, sizes, _drained, nc) => {
  writer.grant(5, 500);
  for (let i = 0; i < 300; i++) writer.add(i, undefined); // less than a frame: open
  assert.equal(await frames(sizes, 0, nc), []);
  writer.grant(5, 100); // same credit, smaller frames (a consumer slowed down)
  assert.equal(await frames(sizes, 3, nc), [100, 100, 100]);
}));

s("frames keep the records' order and timestamps when cut later", () => withWriter("frames.d", 500, async (writer, _sizes, _drained, nc) => {
  const got: Array<{ v: unknown[]; t?: Array<number | null> | undefined }> = [];
  const sub = nc.subscribe("frames.d", { callback: (_e, m) => { const f = decodeFrame(m.data); if (f.k === "r") got.push({ v: f.v, t: f.t }); } });
  try {
    writer.grant(1, 3);
    for (let i = 0; i < 9; i++) writer.add(i, i % 2 === 0 ? 1000 + i : undefined);
    writer.grant(4, 3);
    await nc.flush();
    const deadline = Date.now() + 5000;
    while (got.length < 3 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
    assert.equal(got.map((f) => f.v), [[0, 1, 2], [3, 4, 5], [6, 7, 8]]);
    assert.equal(got.map((f) => f.t), [[1000, null, 1002], [null, 1004, null], [1006, null, 1008]]);
  } finally {
    sub.unsubscribe();
  }
}));

s.run();
