// A direct get's reply read off its raw headers (state/backends/jetstream-kv/reply-headers.ts): the same
// status, sequence and operation as nats.js's own decoding, on replies of a real server (a value, a delete
// marker, a key never written), and on header blocks written in other ways.
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { connect, type Msg, type NatsConnection } from "@nats-io/transport-node";
import { Kvm } from "@nats-io/kv";
import { withServer } from "./helpers/nats-server.ts";
import { parseHeaderBlock, rawHeaderBlock, replyFields } from "../state/backends/jetstream-kv/reply-headers.ts";
import { parseGet } from "../state/backends/jetstream-kv/pipe-replies.ts";

const s = suite("KV reply headers");
const server = withServer(s);
let nc: NatsConnection;
s.before(async () => { nc = await connect({ servers: server.url }); });
s.after(async () => { await nc?.close(); });

const bytes = (text: string) => new TextEncoder().encode(text);
/** What nats.js's decoding makes of the reply (read after the fast path, which does not decode). */
const slow = (m: Msg) => ({ code: m.headers?.code ?? 0, seq: Number(m.headers?.get("Nats-Sequence") || 0), op: m.headers?.get("KV-Operation") || undefined });

s("replies of a real server: a value, a delete marker and a missing key read as nats.js reads them", async () => {
  const kv = await new Kvm(nc).create("rh", { allow_direct: true } as never);
  await kv.put("a", "one");
  await kv.put("a", "two");
  await kv.put("b", "x");
  await kv.delete("b");
  const get = (key: string) => nc.request(`$JS.API.DIRECT.GET.KV_rh.$KV.rh.${key}`, undefined, { timeout: 5000 });
  const [a, b, missing] = [await get("a"), await get("b"), await get("nope")];
  for (const m of [a, b, missing]) assert.ok(rawHeaderBlock(m) instanceof Uint8Array, "nats.js keeps the raw header block where reply-headers.ts reads it");
  const fast = [a, b, missing].map(replyFields);
  assert.equal(fast, [a, b, missing].map(slow));
  assert.equal(fast[0], { code: 0, seq: 2, op: undefined });
  assert.equal(fast[1], { code: 0, seq: 4, op: "DEL" });
  assert.is(fast[2]!.code, 404);
  // What the KV pipe makes of them.
  const read = [a, b, missing].map((m) => parseGet(m, "KV_rh"));
  assert.equal(read.map((r) => [r.data === undefined ? undefined : new TextDecoder().decode(r.data), r.seq]), [["two", 2], [undefined, 4], [undefined, 0]]);
});

s("header blocks written in other ways: names in any case, spaces around values, a status with a description", () => {
  assert.equal(parseHeaderBlock(bytes("NATS/1.0\r\nNats-Stream: KV_x\r\nNats-Subject: $KV.x.k\r\nNats-Sequence: 42\r\nNats-Time-Stamp: 2026-12-08T00:00:00Z\r\n\r\n")), { code: 0, seq: 42, op: undefined });
  assert.equal(parseHeaderBlock(bytes("NATS/1.0\r\nnats-sequence:7\r\nkv-operation:  PURGE \r\n\r\n")), { code: 0, seq: 7, op: "PURGE" });
  assert.equal(parseHeaderBlock(bytes("NATS/1.0 404 Message Not Found\r\n\r\n")), { code: 404, seq: 0, op: undefined });
  assert.equal(parseHeaderBlock(bytes("NATS/1.0 503\r\n\r\n")), { code: 503, seq: 0, op: undefined });
  assert.equal(parseHeaderBlock(bytes("NATS/1.0\r\nX-Other: a:b\r\nNats-Sequence: 3\r\n\r\n")), { code: 0, seq: 3, op: undefined });
  assert.is(parseHeaderBlock(bytes("HTTP/1.1 200 OK\r\n\r\n")), undefined, "not a NATS header block: the library decodes it");
  assert.is(parseHeaderBlock(bytes("NATS/1.0\r\nNats-Sequence: 1e3\r\n\r\n")), undefined, "a sequence that is not digits: the library decodes it");
});

s.run();
