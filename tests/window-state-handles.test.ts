// Window state stays bounded per key: a window's records share one state descriptor (each key caches a
// handle per descriptor object, and a new descriptor per record grew that cache by every record), a fired
// window's handle is let go, and a key's handle cache is capped for functions that make descriptors as they
// go. Pure logic, no server.
import { suite } from "uvu";
import * as assert from "uvu/assert";
import * as t from "io-ts";
import { windowFunction } from "../runtime/operators/windows/window-function.ts";
import { SlidingEventTimeWindows, TumblingEventTimeWindows } from "../mod.ts";
import { KeySlot } from "../runtime/keyed/key-slots.ts";
import { DirectStateRequestHandler, HeapKeyedStateBackend, KeyGroupRange, valueState } from "../state/mod.ts";
import type { KeyedContext } from "../runtime/contracts/functions.ts";

const test = suite("window state handles");

test("the records of one window use one state descriptor", async () => {
  const fn = windowFunction<string, number, number>(TumblingEventTimeWindows.of(1000) as never, { logic: { type: "reduce", reduce: (a, b) => a + b }, lateTag: undefined, counters: { lateRecords: 0, windowsFired: 0 }, allowedLatenessMs: 0 });
  const seen = new Set<unknown>();
  let stored: unknown;
  const ctxAt = (ts: number) => ({
    timestamp: ts, key: "k", currentWatermark: () => -1,
    state: (d: unknown) => { seen.add(d); return { value: async () => stored, update: async (v: unknown) => { stored = v; } }; },
    timers: { registerEventTimeTimer: () => {} },
  }) as unknown as KeyedContext<string, number>;
  for (let ts = 0; ts < 500; ts++) await fn.processElement(1, ctxAt(ts));
  assert.is(seen.size, 1, "one descriptor for window [0, 1000)");
  assert.is(stored, 500);
});

test("a process window function sees the operator's watermark, not the window's end; window offsets are checked", async () => {
  let seen: number | undefined;
  const fn = windowFunction<string, number, number>(TumblingEventTimeWindows.of(1000) as never, { logic: { type: "process", fn: { process: (_k, c) => { seen = c.currentWatermark; } } }, lateTag: undefined, counters: { lateRecords: 0, windowsFired: 0 }, allowedLatenessMs: 0 });
  const ctx = {
    timestamp: 999, key: "k", currentWatermark: () => 4321, collect: () => {},
    state: () => ({ get: async () => [1], clear: async () => {} }),
  } as unknown as KeyedContext<string, number>;
  await fn.onTimer!(999, ctx);
  assert.is(seen, 4321);
  assert.throws(() => TumblingEventTimeWindows.of(1000, 1500), /\|offset\| < size \(1000\), got 1500/);
  assert.throws(() => SlidingEventTimeWindows.of(1000, 100, -200), /\|offset\| < slide \(100\), got -200/);
  assert.ok(TumblingEventTimeWindows.of(1000, -500));
});

test("a key keeps no handle of a window that fired and was cleared (with and without allowed lateness)", async () => {
  for (const allowedLatenessMs of [0, 500]) {
    const fn = windowFunction<string, number, number>(TumblingEventTimeWindows.of(1000) as never, { logic: { type: "reduce", reduce: (a, b) => a + b }, lateTag: undefined, counters: { lateRecords: 0, windowsFired: 0 }, allowedLatenessMs });
    const slot = new KeySlot("op", "k", '"k"', 0);
    const heap = new HeapKeyedStateBackend(KeyGroupRange.forOperator(128, 1, 0));
    slot.handler = new DirectStateRequestHandler(heap);
    const out: number[] = [];
    let watermark = -1;
    const timers: number[] = [];
    const ctxAt = (ts: number | undefined) => ({
      timestamp: ts, key: "k", currentWatermark: () => watermark, collect: (n: number) => out.push(n),
      state: (d: never) => slot.state(d), releaseState: (d: never) => slot.release(d),
      timers: { registerEventTimeTimer: (at: number) => timers.push(at) },
    }) as unknown as KeyedContext<string, number>;
    // 100 windows of 3 records each; the watermark passes each window's end (and its lateness) before the next.
    for (let w = 0; w < 100; w++) {
      for (const ts of [w * 1000, w * 1000 + 1, w * 1000 + 2]) await fn.processElement(1, ctxAt(ts));
      watermark = w * 1000 + 999 + allowedLatenessMs;
      for (const at of timers.splice(0).filter((x, i, all) => all.indexOf(x) === i).sort((a, b) => a - b)) await fn.onTimer!(at, ctxAt(at));
    }
    assert.equal(out, Array(100).fill(3), `every window fired once with its 3 records (lateness ${allowedLatenessMs})`);
    const kept = (slot as unknown as { handles?: Map<unknown, unknown>; firstHandle?: unknown });
    assert.is(kept.handles?.size ?? 0, 0, `handles kept for past windows (lateness ${allowedLatenessMs})`);
    assert.is(kept.firstHandle, undefined, `the first window's handle (lateness ${allowedLatenessMs})`);
  }
});

test("a key keeps at most a bounded number of state handles", () => {
  const slot = new KeySlot("op", "k", '"k"', 0);
  const first = valueState("first", t.number);
  assert.is(slot.state(first), slot.state(first), "a handle is cached");
  for (let i = 0; i < 1000; i++) slot.state(valueState(`inline-${i}`, t.number));
  const handles = (slot as unknown as { handles?: Map<unknown, unknown> }).handles;
  assert.ok((handles?.size ?? 0) <= 32, `handles kept: ${handles?.size}`);
});

test.run();
