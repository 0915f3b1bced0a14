// A checkpoint aborted while its id was being reserved (the job's NATS connection lost and back, no job
// restart) is counted as aborted, is no longer in flight, says what happened, and its id is not reused.
// Real server restarted on its port and store, real checkpoint bucket; the reservation is held until the
// client's reconnect was handled, as the job runner handles it (abortPending), so the order is the one
// the defect needs.
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { connect, type NatsConnection } from "@nats-io/transport-node";
import { CheckpointCoordinator, type CheckpointTarget } from "../actors/checkpoint/coordinator.ts";
import { CheckpointStore } from "../runtime/checkpoint/store.ts";
import { JobNames } from "../runtime/core/names.ts";
import { RestartableServer } from "./helpers/nats-server.ts";
import { eventually, within } from "./helpers/cli.ts";

const s = suite("checkpoint aborted across a NATS reconnect");

s("aborted while reserving its id: counted, not in flight, the reason named, the next checkpoint takes a new id", async () => {
  const server = await RestartableServer.start();
  let nc: NatsConnection | undefined;
  let coordinator: CheckpointCoordinator | undefined;
  try {
    nc = await connect({ servers: server.url, maxReconnectAttempts: -1, reconnectTimeWait: 100 });
    const store = await CheckpointStore.open(nc, new JobNames("abrc"));
    let reconnected!: () => void;
    let reconnect = new Promise<void>((r) => { reconnected = r; });
    let hold = false;
    const held = new Proxy(store, {
      get(target, key) {
        if (key === "reserveIds") return async (...args: Parameters<CheckpointStore["reserveIds"]>) => { if (hold) await reconnect; return target.reserveIds(...args); };
        const v = Reflect.get(target, key, target);
        return typeof v === "function" ? v.bind(target) : v;
      },
    });
    const triggered: number[] = [];
    const target: CheckpointTarget = {
      id: "src#0", isSource: true, isWaitingForFinalCheckpoint: false,
      triggerCheckpoint: (b) => {
        triggered.push(b.id);
        queueMicrotask(() => coordinator!.ack({ vertexUid: "src", index: 0, parallelism: 1, operators: {}, ackedAtMs: 0, alignmentMs: 0, stateChanged: { entries: 0, bytes: 0 } }, b.id));
      },
      notifyCheckpointComplete: () => {}, notifyCheckpointAborted: () => {},
    };
    coordinator = new CheckpointCoordinator(() => [target], {
      job: "abrc", store: held, firstId: 1, reservedThrough: 0, latestRevision: 0, maxParallelism: 128, parallelism: { src: 1 },
      timeoutMs: 60_000, retain: 3, log: () => {},
    });
    const c = coordinator;
    assert.is(await within(c.trigger(), 30_000), 1, "the first checkpoint completes");
    // As ClusterJobRunner.reconnected: a checkpoint in flight when the connection comes back is aborted.
    void (async () => {
      for await (const st of nc!.status()) {
        if (st.type === "reconnect") { c.abortPending("the leader's NATS connection was lost and came back (this checkpoint's messages may be lost)"); reconnected(); }
      }
    })();
    hold = true;
    await server.kill();
    const second = c.trigger().then(() => "completed", (e: Error) => e.message);
    await server.restart();
    await within(reconnect, 60_000);
    const outcome = await within(second, 60_000);
    assert.is(outcome, "checkpoint 2 aborted while its id was reserved: the leader's NATS connection was lost and came back (this checkpoint's messages may be lost)");
    const stats = c.stats();
    assert.is(stats.aborted, 1, "counted as aborted");
    assert.is(stats.inFlight, undefined, "not in flight");
    assert.match(stats.lastFailure ?? "", /checkpoint 2 aborted/);
    hold = false;
    reconnect = Promise.resolve();
    const third = await eventually("a checkpoint after the reconnect", 60_000, () => within(c.trigger().catch(() => undefined), 30_000));
    assert.is(third, 3, "the aborted id is not reused");
    assert.equal(triggered, [1, 3]);
    assert.equal([c.stats().completed, c.stats().aborted, c.stats().inFlight], [2, 1, undefined]);
  } finally {
    await coordinator?.stop();
    await nc?.close();
    await server.stop();
  }
});

s.run();
