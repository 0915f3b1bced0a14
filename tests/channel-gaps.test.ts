// Channels between subtasks detect lost frames and lost credit grants, on a real nats-server: a frame
// numbered past the one due fails the consumer before anything after it is processed, and grants are
// cumulative, so a lost grant does not stall a producer once a later one arrives.
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { connect, type NatsConnection, type Status } from "@nats-io/transport-node";
import { RestartableServer, withServer } from "./helpers/nats-server.ts";
import { eventually, within } from "./helpers/cli.ts";
import { ChannelWriter, RECONNECT_HOLD_MS } from "../runtime/transport/channel-writer.ts";
import { encodeProbe, encodeRecords, withSequence } from "../runtime/transport/frames.ts";
import { ChannelGapError, InputGate, type GateItem } from "../runtime/transport/input-gate.ts";

const s = suite("channel gaps");
const nats = withServer(s);

const spec = (subject: string) => ({ subject, creditSubject: `${subject}.cr`, creditTag: "0.0", inputIndex: 0, indexInInput: 0, description: "src#0" });

/** Polls until `n` frames came through (or throws what poll throws); a deadline bounds the wait. */
async function pollFrames(gate: InputGate, n: number): Promise<GateItem[]> {
  const got: GateItem[] = [];
  const deadline = Date.now() + 10_000;
  while (got.length < n) {
    if (Date.now() > deadline) throw new Error(`only ${got.length} of ${n} frames arrived`);
    const item = gate.poll();
    if (item) got.push(item);
    else await gate.waitForInput(50);
  }
  return got;
}

async function withConnection(f: (nc: NatsConnection) => Promise<void>): Promise<void> {
  const nc = await connect({ servers: nats.url });
  try { await f(nc); } finally { await nc.close(); }
}

s("frames numbered 1, 2, 4: the consumer takes 1 and 2 and fails on 4, naming frame 3", () => withConnection(async (nc) => {
  const gate = new InputGate(nc, [spec("gap.a")], 8);
  try {
    gate.subscribe();
    await nc.flush();
    for (const q of [1, 2, 4]) nc.publish("gap.a", withSequence(encodeRecords([q], undefined), q));
    const first = await pollFrames(gate, 2);
    assert.equal(first.map((i) => i.type === "frame" && i.frame.k === "r" ? i.frame.v : undefined), [[1], [2]]);
    const err = await pollFrames(gate, 1).then(() => undefined, (e: unknown) => e);
    assert.instance(err, ChannelGapError);
    assert.match((err as Error).message, /frame 4 arrived where frame 3 was due/);
  } finally {
    gate.close();
  }
}));

s("a channel from a real writer numbers its frames in order: no gap over many frames and control", () => withConnection(async (nc) => {
  const gate = new InputGate(nc, [spec("gap.b")], 4);
  const creditSub = nc.subscribe("gap.b.cr", { callback: (_e, m) => writer.grant(Number(m.string().split(" ")[1])) });
  const writer = new ChannelWriter(nc, "gap.b", 10, 1024 * 1024, () => {});
  try {
    gate.subscribe();
    await nc.flush();
    gate.start();
    for (let i = 0; i < 500; i++) {
      writer.add(i, undefined);
      if (i % 97 === 0) writer.control({ k: "w", w: i });
    }
    writer.control({ k: "e" });
    const items: GateItem[] = [];
    const deadline = Date.now() + 10_000;
    // Frames beyond the window wait in the writer for grants, which come as the gate acks what it took.
    while (!items.some((i) => i.type === "frame" && i.frame.k === "e")) {
      if (Date.now() > deadline) throw new Error(`stalled after ${items.length} frames`);
      const item = gate.poll();
      if (item) { items.push(item); gate.ack(0); } else await gate.waitForInput(50);
    }
    const values = items.flatMap((i) => (i.type === "frame" && i.frame.k === "r" ? i.frame.v : []));
    assert.equal(values, Array.from({ length: 500 }, (_, i) => i));
  } finally {
    creditSub.unsubscribe();
    gate.close();
  }
}));

s("grants are cumulative: after a lost grant, the next one lets every frame through", () => withConnection(async (nc) => {
  const writer = new ChannelWriter(nc, "gap.c", 1, 1024 * 1024, () => {});
  const got: number[] = [];
  const sub = nc.subscribe("gap.c", { callback: (_e, m) => { got.push((m.json() as { q: number }).q); } });
  try {
    for (let i = 0; i < 6; i++) writer.add(i, undefined);
    writer.grant(2); // the grant "up to 4" is lost; "up to 6" arrives
    writer.grant(6);
    writer.grant(5); // late, stale: changes nothing
    await nc.flush();
    const deadline = Date.now() + 5000;
    while (got.length < 6 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    assert.equal(got, [1, 2, 3, 4, 5, 6]);
    assert.is(writer.backlog, 0);
  } finally {
    sub.unsubscribe();
  }
}));

s("after a reconnect, a probe naming a frame that never arrived fails the consumer, even with nothing more on the channel", () => withConnection(async (nc) => {
  const gate = new InputGate(nc, [spec("gap.d")], 8);
  try {
    gate.subscribe();
    await nc.flush();
    // Frames 1 and 2 arrived, 3 was lost in the outage; the producer then has nothing more to send but its probe.
    for (const q of [1, 2]) nc.publish("gap.d", withSequence(encodeRecords([q], undefined), q));
    nc.publish("gap.d", encodeProbe(3));
    const first = await pollFrames(gate, 2);
    assert.equal(first.map((i) => i.type === "frame" && i.frame.k === "r" ? i.frame.v : undefined), [[1], [2]]);
    const err = await pollFrames(gate, 1).then(() => undefined, (e: unknown) => e);
    assert.instance(err, ChannelGapError);
    assert.match((err as Error).message, /published frames up to 3 .* frame 3 never arrived/);
  } finally {
    gate.close();
  }
}));

s("a writer's probe after every frame arrived is taken by the gate without a trace, and needs no credit", () => withConnection(async (nc) => {
  const gate = new InputGate(nc, [spec("gap.e")], 2);
  const writer = new ChannelWriter(nc, "gap.e", 1, 1024 * 1024, () => {});
  try {
    gate.subscribe();
    await nc.flush();
    writer.grant(2);
    for (let i = 0; i < 3; i++) writer.add(i, undefined); // frames 1 and 2 go, 3 waits for credit
    writer.probe();
    writer.add(3, undefined);
    await nc.flush();
    const items = await pollFrames(gate, 2);
    assert.equal(items.map((i) => i.type === "frame" && i.frame.k === "r" ? i.frame.v : undefined), [[0], [1]]);
    // The probe (last frame 2) came after them: absorbed, no gap, nothing more to poll.
    await new Promise((r) => setTimeout(r, 100));
    assert.is(gate.poll(), undefined);
    assert.is(writer.backlog, 2);
    writer.grant(4);
    const rest = await pollFrames(gate, 2);
    assert.equal(rest.map((i) => i.type === "frame" && i.frame.k === "r" ? i.frame.v : undefined), [[2], [3]]);
  } finally {
    gate.close();
  }
}));

s("after a reconnect's probe a writer holds its frames until the consumer is heard from, then probes again and sends them", () => withConnection(async (nc) => {
  const writer = new ChannelWriter(nc, "gap.f", 1, 1024 * 1024, () => {});
  const got: string[] = [];
  const sub = nc.subscribe("gap.f", { callback: (_e, m) => { const f = m.json<{ q?: number; k: string; last?: number }>(); got.push(f.k === "p" ? `probe ${f.last}` : `q${f.q}`); } });
  try {
    writer.grant(8);
    writer.add(0, undefined);
    writer.probe(); // the connection is back; nobody answers yet
    writer.add(1, undefined);
    writer.add(2, undefined);
    await nc.flush();
    assert.ok(writer.held, "held after the probe");
    assert.is(writer.backlog, 2, "frames 2 and 3 wait, though credit allows them");
    assert.equal(got, ["q1", "probe 1"]);
    writer.grant(8); // the consumer's grant again (its answer to a probe, or its own reconnect): nothing new, but it is there
    await nc.flush();
    assert.is(writer.held, false);
    assert.equal(got, ["q1", "probe 1", "probe 1", "q2", "q3"]);
  } finally {
    sub.unsubscribe();
  }
}));

s("a writer whose consumer is never heard from after a reconnect sends its held frames after RECONNECT_HOLD_MS", () => withConnection(async (nc) => {
  const writer = new ChannelWriter(nc, "gap.i", 1, 1024 * 1024, () => {});
  const got: string[] = [];
  const sub = nc.subscribe("gap.i", { callback: (_e, m) => { const f = m.json<{ q?: number; k: string }>(); got.push(f.k === "p" ? "probe" : `q${f.q}`); } });
  try {
    writer.grant(8);
    const probedAt = Date.now();
    writer.probe();
    writer.add(0, undefined);
    await eventually("the held frame", RECONNECT_HOLD_MS + 10_000, () => (got.length >= 3 ? true : undefined));
    assert.equal(got, ["probe", "probe", "q1"]);
    assert.ok(Date.now() - probedAt >= RECONNECT_HOLD_MS - 50, "not before the hold ran out");
    assert.is(writer.held, false);
  } finally {
    sub.unsubscribe();
  }
}));

s("a gate answers a probe at once with its grant: the producer's hold ends without the consumer's run loop", () => withConnection(async (nc) => {
  const gate = new InputGate(nc, [spec("gap.g")], 4);
  const grants: string[] = [];
  const creditSub = nc.subscribe("gap.g.cr", { callback: (_e, m) => { grants.push(m.string()); } });
  try {
    gate.subscribe();
    await nc.flush();
    gate.start();
    nc.publish("gap.g", encodeProbe(0));
    await nc.flush();
    await eventually("the answer to the probe", 5000, () => (grants.length >= 2 ? true : undefined));
    assert.equal(grants, ["0.0 4", "0.0 4"], "the start's grant, then the answer to the probe (nothing polled)");
  } finally {
    creditSub.unsubscribe();
    gate.close();
  }
}));

// What tests/workers-disconnect.test.ts met under load: after a server restart the producer's process was
// back first and sent frames before the consumer's had subscribed again; core NATS dropped them (a gap:
// the job restarted). Here the consumer's connection waits 1.5 s longer to reconnect.
s("a producer back before its consumer after a server restart loses no frame: they wait for the consumer", async () => {
  const server = await RestartableServer.start();
  const producer = await connect({ servers: server.url, maxReconnectAttempts: -1, reconnectTimeWait: 50 });
  const consumer = await connect({ servers: server.url, maxReconnectAttempts: -1, reconnectTimeWait: 1500 });
  const gate = new InputGate(consumer, [spec("gap.h")], 64);
  const writer = new ChannelWriter(producer, "gap.h", 1, 1024 * 1024, () => {});
  const creditSub = producer.subscribe("gap.h.cr", { callback: (_e, m) => writer.grant(Number(m.string().split(" ")[1])) });
  const reconnected = async (nc: NatsConnection, who: string) => {
    const at = await within((async () => {
      for await (const st of nc.status() as AsyncIterable<Status>) if (st.type === "reconnect") return Date.now();
      return undefined;
    })(), 30_000);
    if (at === undefined) throw new Error(`the ${who}'s connection did not come back within 30 s`);
    return at;
  };
  try {
    gate.subscribe();
    await consumer.flush();
    await producer.flush();
    gate.start();
    writer.add(0, undefined);
    await pollFrames(gate, 1).then(() => gate.ack(0));
    const producerBack = reconnected(producer, "producer");
    const consumerBack = reconnected(consumer, "consumer");
    void consumerBack.catch(() => {}); // awaited below; not unhandled if the producer's wait fails first
    await server.kill();
    await server.restart();
    // As a subtask does at a reconnect (subtask.ts onReconnected): the producer probes, the consumer regrants.
    const producerAt = await producerBack;
    writer.probe();
    for (let i = 1; i <= 5; i++) writer.add(i, undefined);
    const consumerAt = await consumerBack;
    gate.regrant();
    assert.ok(producerAt < consumerAt, "the producer was back first");
    const items = await pollFrames(gate, 5);
    assert.equal(items.map((i) => i.type === "frame" && i.frame.k === "r" ? i.frame.v : undefined), [[1], [2], [3], [4], [5]]);
  } finally {
    creditSub.unsubscribe();
    gate.close();
    await producer.close().catch(() => {});
    await consumer.close().catch(() => {});
    await server.stop();
  }
});

s.run();
