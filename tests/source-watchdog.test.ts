// The JetStream source's watchdog, on a real nats-server: a lane whose consumer goes silent while the
// stream holds more for it is given a new consumer from right after its last sequence (nothing skipped,
// nothing twice); a lane that is simply caught up keeps its consumer.
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { connect, type NatsConnection } from "@nats-io/transport-node";
import { jetstream, jetstreamManager, type JsMsg } from "@nats-io/jetstream";
import { withServer } from "./helpers/nats-server.ts";
import { ConsumerLane } from "../runtime/sources/jetstream-lane.ts";
import { STREAM_GONE_MS } from "../runtime/sources/stream-identity.ts";

const s = suite("jetstream source watchdog");
const nats = withServer(s);
let nc: NatsConnection;
s.before(async () => { nc = await connect({ servers: nats.url }); });
s.after(async () => { await nc.close(); });

async function publish(subject: string, from: number, to: number): Promise<void> {
  const js = jetstream(nc);
  await Promise.all(Array.from({ length: to - from }, (_, i) => js.publish(subject, JSON.stringify(from + i))));
}

async function openLane(stream: string, filter: string, logs: string[]): Promise<ConsumerLane> {
  return ConsumerLane.open({
    js: jetstream(nc), stream, filter, namePrefix: `wd_${stream}`, startAt: "first", resumeAfter: undefined,
    bounded: false, maxMessages: 100, highWater: 1000, wake: () => {}, log: (m) => logs.push(m), stallMs: 300,
  });
}

/** Drains the lane (running its watchdog as the source's timer would) until `n` values or a deadline. */
async function take(lane: ConsumerLane, n: number, into: number[]): Promise<void> {
  const deadline = Date.now() + 15_000;
  while (into.length < n && Date.now() < deadline) {
    const out: JsMsg[] = [];
    lane.drain(out);
    for (const m of out) into.push(m.json<number>());
    await lane.watch();
    await new Promise((r) => setTimeout(r, 50));
  }
}

s("a silent consumer behind its stream is recreated from the next sequence: every message once, in order", async () => {
  const jsm = await jetstreamManager(nc);
  await jsm.streams.add({ name: "WD1", subjects: ["wd1.>"] });
  await publish("wd1.a", 0, 100);
  const logs: string[] = [];
  const lane = await openLane("WD1", "wd1.a", logs);
  try {
    const got: number[] = [];
    await take(lane, 100, got);
    // The consumer stops delivering, as the client's ordered consumer does after some server restarts.
    await (lane as unknown as { messages: { close(): Promise<void> } }).messages.close();
    await publish("wd1.a", 100, 150);
    await take(lane, 150, got);
    assert.equal(got, Array.from({ length: 150 }, (_, i) => i));
    assert.is(lane.recreated, 1);
    assert.ok(logs.some((l) => /subject "wd1.a" of stream "WD1".*recreating the consumer from sequence 101/.test(l)), logs.join("\n"));
  } finally {
    await lane.close();
  }
});

s("a stream deleted and created again under the lane fails it, saying so, rather than reading on from an old sequence", async () => {
  const jsm = await jetstreamManager(nc);
  await jsm.streams.add({ name: "WD3", subjects: ["wd3.>"] });
  await publish("wd3.a", 0, 2);
  const lane = await openLane("WD3", "wd3.a", []);
  try {
    const got: number[] = [];
    await take(lane, 2, got);
    await jsm.streams.delete("WD3");
    // Created again a moment later (a creation time to the millisecond of its own).
    await new Promise((r) => setTimeout(r, 20));
    await jsm.streams.add({ name: "WD3", subjects: ["wd3.>"] });
    await publish("wd3.a", 100, 104);
    const deadline = Date.now() + 15_000;
    while (!lane.failure && Date.now() < deadline) { await lane.watch(); await new Promise((r) => setTimeout(r, 100)); }
    assert.match(lane.failure?.message ?? "", /stream "WD3" was deleted and created again while the job read it/);
    assert.equal(got, [0, 1], "nothing read from the new stream at the old position");
  } finally {
    await lane.close();
  }
});

s("a stream deleted for good under the lane fails it once it stays missing, saying so, rather than idling for ever", async () => {
  const jsm = await jetstreamManager(nc);
  await jsm.streams.add({ name: "WD4", subjects: ["wd4.>"] });
  await publish("wd4.a", 0, 2);
  const logs: string[] = [];
  const lane = await openLane("WD4", "wd4.a", logs);
  try {
    const got: number[] = [];
    await take(lane, 2, got);
    await jsm.streams.delete("WD4");
    const deadline = Date.now() + STREAM_GONE_MS + 20_000;
    while (!lane.failure && Date.now() < deadline) { await lane.watch(); await new Promise((r) => setTimeout(r, 100)); }
    assert.match(lane.failure?.message ?? "no failure", /stream "WD4" was deleted while the job read it \(not found for \d+ s\)/);
    assert.ok(logs.some((l) => /stream "WD4" not found \(deleted\?\).*fails unless it is back within/.test(l)), logs.join("\n"));
  } finally {
    await lane.close();
  }
});

s("a caught-up lane with nothing more to read keeps its consumer", async () => {
  const jsm = await jetstreamManager(nc);
  await jsm.streams.add({ name: "WD2", subjects: ["wd2.>"] });
  await publish("wd2.a", 0, 10);
  await publish("wd2.b", 0, 10); // another subject's messages are not this lane's
  const lane = await openLane("WD2", "wd2.a", []);
  try {
    const got: number[] = [];
    await take(lane, 10, got);
    const until = Date.now() + 1200;
    while (Date.now() < until) { await lane.watch(); await new Promise((r) => setTimeout(r, 100)); }
    assert.is(lane.recreated, 0);
    await publish("wd2.a", 10, 20);
    await take(lane, 20, got);
    assert.equal(got, Array.from({ length: 20 }, (_, i) => i));
  } finally {
    await lane.close();
  }
});

s.run();
