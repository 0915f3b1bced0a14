import { suite } from "uvu";
import * as assert from "uvu/assert";
import { connect, type NatsConnection } from "@nats-io/transport-node";
import { jetstreamManager } from "@nats-io/jetstream";
import { Kvm } from "@nats-io/kv";
import { withServer } from "./helpers/nats-server.ts";
import { Sinks, decodeKvKey, encodeKvKey } from "../runtime/sinks/mod.ts";
import { standaloneContext } from "./helpers/standalone-context.ts";

const s = suite("Sinks.kv");
const server = withServer(s);
let nc: NatsConnection;
s.before(async () => { nc = await connect({ servers: server.url }); });
s.after(async () => { await nc?.close(); });

interface Total { user: string; total: number }

s("creates the bucket with history 1; the latest value per key wins; read back from the server", async () => {
  const w = await Sinks.kv({ bucket: "totals", key: (t: Total) => t.user }).createWriter(standaloneContext({ nc }));
  for (let i = 0; i < 5000; i++) {
    const p = w.write({ user: `u${i % 50}`, total: i }, undefined);
    if (p) await p;
  }
  await w.flush();
  const kv = await new Kvm(nc).open("totals");
  assert.is((await kv.status()).history, 1);
  for (const u of [0, 17, 49]) {
    const e = await kv.get(`u${u}`);
    assert.equal(e?.json(), { user: `u${u}`, total: 4950 + u });
  }
  const keys: string[] = [];
  for await (const k of await kv.keys()) keys.push(k);
  assert.is(keys.length, 50);
  // Coalescing: 5000 records for 50 keys within one flush window are far fewer puts.
  const si = await (await jetstreamManager(nc)).streams.info("KV_totals");
  assert.ok(si.state.last_seq < 5000, `coalesced: ${si.state.last_seq} puts for 5000 records`);
  await w.close();
});

s("writes without a flush reach the bucket after the linger time; many keys use bounded in-flight puts", async () => {
  const w = await Sinks.kv({ bucket: "linger", key: (n: number) => n, lingerMs: 20, maxInFlight: 16, maxBufferedKeys: 100 }).createWriter(standaloneContext({ nc }));
  let waits = 0;
  for (let i = 0; i < 3000; i++) {
    const p = w.write(i, undefined);
    if (p) { waits++; await p; }
  }
  assert.ok(waits > 0, "a full map makes write wait");
  await new Promise((r) => setTimeout(r, 300));
  const kv = await new Kvm(nc).open("linger");
  assert.is((await kv.get("2999"))?.json(), 2999, "sent without a flush");
  await w.close();
});

s("keys NATS KV does not allow are encoded reversibly, or rejected when asked", async () => {
  for (const k of ["plain", "with space", "ünï", "a..b", ".lead", "trail.", "=tricky", "=3D", "", "=", "a/b=c.d_e-f", "//", "a./b"]) {
    const stored = encodeKvKey(k);
    assert.is(decodeKvKey(stored), k, `round trip of ${JSON.stringify(k)}`);
    assert.ok(/^[-/_=.A-Za-z0-9]+$/.test(stored) && !stored.startsWith(".") && !stored.endsWith(".") && !stored.includes(".."), `${JSON.stringify(stored)} is a valid KV key`);
  }
  assert.is(encodeKvKey("orders.eu/42_x-y"), "orders.eu/42_x-y", "keys of letters, digits, - _ . / stay readable");
  // The same encoding as keyed state's KV keys (runtime/core/kv-keys.ts): "=" and the UTF-8 bytes in hex.
  assert.is(encodeKvKey("user 1.ü"), "user=201.=C3=BC");
  const w = await Sinks.kv({ bucket: "odd", key: (v: { k: string }) => v.k }).createWriter(standaloneContext({ nc }));
  await w.write({ k: "hello world" }, undefined);
  await w.flush();
  const kv = await new Kvm(nc).open("odd");
  const keys: string[] = [];
  for await (const k of await kv.keys()) keys.push(k);
  assert.equal(keys.map(decodeKvKey), ["hello world"]);

  // A key KV cannot take (refused as asked, or not a string or number) is that record's dead letter; the job goes on.
  const ctx = standaloneContext({ nc, job: "oddkeys" });
  const strict = await Sinks.kv({ bucket: "odd", key: (v: { k: string }) => v.k, keyEncoding: "reject" }).createWriter(ctx);
  await strict.write({ k: "hello world" }, undefined);
  await strict.write({ k: undefined as unknown as string }, undefined);
  await strict.write({ k: "fine" }, undefined);
  await strict.flush();
  assert.is(ctx.deadLetters.count, 2);
  await ctx.publisher.flush();
  const letters = await (await jetstreamManager(nc)).streams.info("weir_oddkeys_dlq");
  assert.is(letters.state.messages, 2);
  assert.is((await kv.get("fine"))?.string(), JSON.stringify({ k: "fine" }));
  assert.throws(() => Sinks.kv({ bucket: "bad name", key: "x" }), /Sinks.kv: bucket/);
});

s("delivery exactly-once: a service reads a key's value only once its checkpoint commits (a replay never shows an older one)", async () => {
  const w = await Sinks.kv({ bucket: "eo_totals", key: (t: Total) => t.user, delivery: "exactly-once" })
    .createWriter(standaloneContext({ nc, job: "kveo", checkpointing: true }));
  try {
    for (let i = 1; i <= 3; i++) await w.write({ user: "a b", total: i }, undefined);
    await w.flush();
    const kv = await new Kvm(nc).open("eo_totals");
    assert.is(await kv.get(encodeKvKey("a b")), null, "nothing visible before the checkpoint commits");
    await w.snapshotState!(1);
    await w.notifyCheckpointComplete!(1);
    await w.flush(); // the commit runs in the background; flush waits for it
    assert.equal((await kv.get(encodeKvKey("a b")))?.json(), { user: "a b", total: 3 });
    await w.write({ user: "a b", total: 4 }, undefined);
    await w.flush();
    assert.equal((await kv.get(encodeKvKey("a b")))?.json(), { user: "a b", total: 3 }, "uncommitted output stays invisible");
  } finally {
    await w.close();
  }
  assert.throws(() => Sinks.kv({ bucket: "x", key: "k", delivery: "at-most-once" as never }), /delivery/);
});

s("a fixed key keeps the latest record", async () => {
  const w = await Sinks.kv({ bucket: "latest", key: "current" }).createWriter(standaloneContext({ nc }));
  for (let i = 0; i < 10; i++) await w.write({ i }, undefined);
  await w.flush();
  assert.equal((await (await new Kvm(nc).open("latest")).get("current"))?.json(), { i: 9 });
});

s.run();
