import { suite } from "uvu";
import * as assert from "uvu/assert";
import { BarrierAligner } from "../runtime/checkpoint/barrier-aligner.ts";

const aligner = suite("BarrierAligner");

aligner("blocks each channel whose barrier arrived until all have, then releases them", () => {
  const a = new BarrierAligner(3);
  assert.equal(a.onBarrier(0, 1), [{ type: "block", channel: 0 }]);
  assert.equal(a.onBarrier(2, 1), [{ type: "block", channel: 2 }]);
  assert.is(a.aligning, 1);
  assert.equal(a.onBarrier(1, 1), [{ type: "aligned", checkpointId: 1, release: [0, 2] }]);
  assert.is(a.aligning, undefined);
});

aligner("a single channel aligns at once", () => {
  assert.equal(new BarrierAligner(1).onBarrier(0, 7), [{ type: "aligned", checkpointId: 7, release: [] }]);
});

aligner("ended channels count as aligned", () => {
  const a = new BarrierAligner(2);
  a.onBarrier(0, 3);
  assert.equal(a.onEndOfInput(1), [{ type: "aligned", checkpointId: 3, release: [0] }]);
  assert.equal(a.onBarrier(0, 4), [{ type: "aligned", checkpointId: 4, release: [] }], "only channel 0 is live now");
});

aligner("a newer barrier abandons the checkpoint being aligned; an older one is ignored", () => {
  const a = new BarrierAligner(2);
  a.onBarrier(0, 1);
  assert.equal(a.onBarrier(0, 2), [{ type: "abandoned", checkpointId: 1, release: [0] }, { type: "block", channel: 0 }]);
  assert.equal(a.onBarrier(1, 1), [{ type: "ignore" }]);
  assert.equal(a.onBarrier(1, 2), [{ type: "aligned", checkpointId: 2, release: [0] }]);
});

aligner.run();
