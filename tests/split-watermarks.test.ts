// SplitWatermarks (fromSource's per-split watermarks) as pure logic, on a simulated clock.
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { SplitWatermarks } from "../runtime/operators/split-watermarks.ts";
import { MIN_WATERMARK } from "../runtime/transport/frames.ts";

const s = suite("split watermarks");

/** Splits whose end the test decides. */
const splits = (count: number) => {
  const ended = new Set<number>();
  return { count, ended: (i: number) => ended.has(i), end: (i: number) => ended.add(i) };
};

s("the lowest split's watermark, held at MIN while a split has no record", () => {
  const sp = splits(2);
  const w = new SplitWatermarks(sp, 10, undefined, 0);
  w.record(0, 1000, 0);
  assert.equal(w.current(0), { watermark: MIN_WATERMARK, idle: false });
  w.record(1, 400, 0);
  assert.equal(w.current(0), { watermark: 389, idle: false });
  w.record(1, 5000, 0);
  assert.equal(w.current(0), { watermark: 989, idle: false });
  w.record(0, 200, 0); // out of order: a split's watermark never goes back
  assert.equal(w.current(0), { watermark: 989, idle: false });
});

s("an idle split stops holding the others back; all idle, the output is idle after what they reached", () => {
  const sp = splits(2);
  const w = new SplitWatermarks(sp, 0, 500, 0);
  w.record(0, 100, 0);
  w.record(1, 900, 0);
  assert.equal(w.current(100), { watermark: 99, idle: false });
  w.record(1, 950, 400);
  assert.equal(w.current(600), { watermark: 949, idle: false }, "split 0 idle since 500");
  assert.equal(w.current(900), { watermark: 99, idle: true }, "both idle");
  w.record(0, 120, 950);
  assert.equal(w.current(950), { watermark: 119, idle: false });
});

s("a split that never delivered does not hold an all-idle output's watermark at MIN", () => {
  const w = new SplitWatermarks(splits(2), 0, 300, 0);
  w.record(0, 5000, 10);
  assert.equal(w.current(200), { watermark: MIN_WATERMARK, idle: false }, "split 1 may still deliver older records");
  assert.equal(w.current(305), { watermark: 4999, idle: false }, "split 1 idle");
  assert.equal(w.current(400), { watermark: 4999, idle: true });
});

s("an ended split counts no more, but only once noted (between batches)", () => {
  const sp = splits(2);
  const w = new SplitWatermarks(sp, 0, undefined, 0);
  w.record(0, 100, 0);
  w.record(1, 900, 0);
  sp.end(0);
  assert.equal(w.current(0).watermark, 99, "not noted yet: its last records may still be in the batch");
  w.noteEnded();
  assert.equal(w.current(0).watermark, 899);
  sp.end(1);
  w.noteEnded();
  assert.equal(w.current(0), { watermark: 899, idle: false }, "all ended: the highest reached");
});

s.run();
