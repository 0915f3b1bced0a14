// The sorted drain's per-key state overlay (runtime/keyed/backlog/key-overlay.ts) over the heap backend:
// a key's writes reach the backend only at flush, once per entry and in the order first touched; a map's
// whole-map request (clear) writes and forgets that map's entries and leaves the others in place.
import { suite } from "uvu";
import * as assert from "uvu/assert";
import * as t from "io-ts";
import { HeapKeyedStateBackend } from "../state/backends/heap.ts";
import { DirectStateRequestHandler } from "../state/handlers/direct.ts";
import { createStateHandle } from "../state/handles/create.ts";
import { listState, mapState, valueState } from "../state/descriptors.ts";
import { StateRequestType, type StateRequest, type StateRequestHandler } from "../state/contracts.ts";
import { KeyStateOverlay } from "../runtime/keyed/backlog/key-overlay.ts";
import { FULL_RANGE, scopeOf } from "./state-support.ts";

const s = suite("key state overlay");

const counter = valueState("count", t.number);
const label = valueState("label", t.string);
const perPage = mapState("per-page", t.string, t.number);
const visits = listState("visits", t.number);

/** An overlay for `key` over the heap backend's direct handler, which notes every write it is given (state, user key, value). */
function overlayOver(key: string): { handler: StateRequestHandler; writes: string[]; overlay: KeyStateOverlay; scope: ReturnType<typeof scopeOf> } {
  const direct = new DirectStateRequestHandler(new HeapKeyedStateBackend(FULL_RANGE));
  const writes: string[] = [];
  const note = (r: StateRequest): void => {
    if (r.kind === StateRequestType.Put) writes.push(`${r.address.state}${r.address.userKeyId === undefined ? "" : `/${r.address.userKeyId}`}=${JSON.stringify(r.value)}`);
  };
  const handler: StateRequestHandler = {
    tryNow: (r) => { const v = direct.tryNow(r); if (v !== undefined || r.kind !== StateRequestType.Get) note(r); return v; },
    submit: (r) => { note(r); return direct.submit(r); },
  };
  return { writes, handler, overlay: new KeyStateOverlay(handler), scope: scopeOf(key) };
}

s("a key's writes reach the backend at flush, once per entry, in the order first touched", async () => {
  const { handler, writes, overlay, scope } = overlayOver("user-1");
  const count = createStateHandle(counter, scope, overlay);
  const name = createStateHandle(label, scope, overlay);
  for (let i = 1; i <= 5; i++) await count.update(((await count.value()) ?? 0) + 1);
  await name.update("a");
  await name.update("b");
  assert.equal(writes, [], "nothing written before the flush");
  await overlay.flush();
  assert.equal(writes, ["count=5", 'label="b"']);
  const direct = createStateHandle(counter, scope, handler);
  assert.is(await direct.value(), 5);
  await overlay.flush();
  assert.is(writes.length, 2, "a flush with nothing changed writes nothing");
});

s("clear of a map: its entries are written and forgotten first, the key's other state stays in the overlay", async () => {
  const { handler, writes, overlay, scope } = overlayOver("user-2");
  const pages = createStateHandle(perPage, scope, overlay);
  const count = createStateHandle(counter, scope, overlay);
  // The map's entries come first, the count after them: it must keep its place when they go.
  await pages.put("/", 1);
  await pages.put("/docs", 2);
  await count.update(3);
  await pages.clear();
  assert.equal(writes.filter((w) => w.startsWith("per-page")), ['per-page/"/"=1', 'per-page/"/docs"=2'], "the map's changes written before the clear");
  await count.update(((await count.value()) ?? 0) + 1);
  await pages.put("/pricing", 5);
  assert.is(await pages.get("/"), undefined, "read after the clear: the backend's (cleared) map");
  await overlay.flush();
  assert.equal(writes.slice(-2), ["count=4", 'per-page/"/pricing"=5'], "the count kept its place and its value; the new entry after it");
  assert.is(await createStateHandle(counter, scope, handler).value(), 4);
  assert.is(await createStateHandle(perPage, scope, handler).get("/pricing"), 5);
});

s("batch mode's overlay (ephemeral): reads the key's stored list and map, appends, iterates and clears them in memory, and writes nothing", async () => {
  const { handler, writes, scope } = overlayOver("user-2");
  const stored = { pages: createStateHandle(perPage, scope, handler), list: createStateHandle(visits, scope, handler) };
  await stored.pages.putAll({ "/a": 1, "/b": 2 });
  await stored.list.add(1);
  const before = writes.length;
  const overlay = new KeyStateOverlay(handler, { maxValueBytes: 1000 });
  const pages = createStateHandle(perPage, scope, overlay);
  const list = createStateHandle(visits, scope, overlay);
  await list.add(2); // a list it does not hold yet: read, then appended here
  assert.equal(await list.get(), [1, 2]);
  await pages.put("/c", 3);
  await pages.remove("/a");
  assert.equal(await pages.entries(), [["/b", 2], ["/c", 3]], "the stored entries and the key's writes, in key order");
  assert.is(await pages.get("/a"), undefined, "removed");
  await pages.clear();
  assert.ok(await pages.isEmpty());
  assert.is(await pages.get("/b"), undefined, "cleared: the stored entry reads absent");
  await pages.put("/d", 4);
  assert.equal(await pages.keys(), ["/d"]);
  let refused: string | undefined;
  for (let i = 0; i < 100 && refused === undefined; i++) refused = await list.add(1e15 + i).then(() => undefined, (e: Error) => e.message);
  assert.match(refused ?? "", /^state "visits" for key "user-2": the value is 10\d\d bytes, more than maxValueBytes 1000; it was not stored$/, "as the backends refuse it");
  assert.is(writes.length, before, "nothing written to the backend");
  assert.equal(await stored.list.get(), [1]);
  assert.equal(await stored.pages.entries(), [["/a", 1], ["/b", 2]]);
});

s("batch mode's overlay: a map cleared while its first read is out stays cleared", async () => {
  const { handler, scope } = overlayOver("user-3");
  await createStateHandle(perPage, scope, handler).putAll({ "/a": 1, "/b": 2 });
  const pages = createStateHandle(perPage, scope, new KeyStateOverlay(handler, { maxValueBytes: 1000 }));
  const reading = pages.entries().then((entries) => entries.length); // not awaited before the clear
  await pages.clear();
  await reading;
  assert.is(await pages.get("/a"), undefined, "the read that came back after the clear did not bring the stored entries back");
  assert.ok(await pages.isEmpty());
});

s.run();
