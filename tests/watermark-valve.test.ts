import { suite } from "uvu";
import * as assert from "uvu/assert";
import { InputsWatermark, WatermarkValve } from "../runtime/transport/watermark-valve.ts";
import { InputsAttributes, RecordAttributesValve } from "../runtime/transport/attributes-valve.ts";
import { MAX_WATERMARK } from "../runtime/transport/frames.ts";

const valve = suite("WatermarkValve");

valve("emits the minimum over channels, only when it advances", () => {
  const v = new WatermarkValve(3);
  assert.equal(v.inputWatermark(0, 10), {}, "channels 1 and 2 have no watermark yet");
  assert.equal(v.inputWatermark(1, 5), {});
  assert.equal(v.inputWatermark(2, 7), { watermark: 5 });
  assert.equal(v.inputWatermark(0, 12), {}, "min still 5");
  assert.equal(v.inputWatermark(1, 9), { watermark: 7 });
  assert.equal(v.inputWatermark(1, 8), {}, "watermarks never go back");
  assert.is(v.currentWatermark, 7);
});

valve("an idle channel does not hold the others back", () => {
  const v = new WatermarkValve(2);
  v.inputWatermark(0, 100);
  assert.equal(v.inputWatermark(1, 10), { watermark: 10 });
  assert.equal(v.inputStatus(1, true), { watermark: 100 }, "channel 1 idle: min is channel 0");
  assert.equal(v.inputWatermark(0, 150), { watermark: 150 });
});

valve("all channels idle makes the output idle; one active again makes it active", () => {
  const v = new WatermarkValve(2);
  v.inputWatermark(0, 10);
  v.inputWatermark(1, 20);
  v.inputStatus(0, true);
  assert.equal(v.inputStatus(1, true), { idle: true });
  assert.ok(v.isIdle);
  assert.equal(v.inputStatus(0, false), { idle: false });
  assert.not.ok(v.isIdle);
});

valve("the last active channel going idle moves the output to the highest watermark reached (Flink), not leaving windows unfired", () => {
  const v = new WatermarkValve(2);
  v.inputWatermark(0, 1_030_000);
  assert.equal(v.inputWatermark(1, 1_010_500), { watermark: 1_010_500 });
  assert.equal(v.inputStatus(0, true), {}, "channel 1 still holds the minimum");
  assert.equal(v.inputStatus(1, true), { watermark: 1_030_000, idle: true });
  assert.equal(v.inputStatus(1, false), { idle: false });
  assert.equal(v.inputWatermark(1, 1_020_000), {}, "back below the output: not aligned, no regression");
});

valve("one input: its valve's watermark on turning idle reaches the operator", () => {
  const w = new InputsWatermark([2]);
  w.watermark(0, 0, 500);
  w.watermark(0, 1, 100);
  w.status(0, 0, true);
  assert.equal(w.status(0, 1, true), { idle: true, watermark: 500 });
  assert.is(w.current, 500);
});

valve("a channel back from idle counts only once it catches up with the output watermark", () => {
  const v = new WatermarkValve(2);
  v.inputWatermark(0, 50);
  v.inputWatermark(1, 10);
  v.inputStatus(1, true); // output → 50
  assert.is(v.currentWatermark, 50);
  v.inputStatus(1, false);
  assert.equal(v.inputWatermark(1, 30), {}, "behind the output watermark: not aligned, ignored");
  assert.equal(v.inputWatermark(0, 80), { watermark: 80 }, "the unaligned channel does not hold channel 0 back");
  assert.equal(v.inputWatermark(1, 90), {}, "aligned now, but min(80, 90) = 80 already emitted");
  assert.equal(v.inputWatermark(0, 100), { watermark: 90 }, "aligned channel 1 now bounds the minimum");
});

valve("a channel ended after the final watermark stops holding the output back", () => {
  const v = new WatermarkValve(2);
  v.inputWatermark(0, 10);
  v.inputWatermark(1, 20);
  assert.equal(v.inputWatermark(0, MAX_WATERMARK), { watermark: 20 });
  assert.equal(v.inputEnded(0), {});
  assert.equal(v.inputWatermark(1, 30), { watermark: 30 }, "channel 1 alone bounds the output");
});

valve("a channel stopped below the final watermark (graceful stop) keeps holding it: nothing fires on input it never delivered", () => {
  const v = new WatermarkValve(2);
  v.inputWatermark(0, 10);
  v.inputWatermark(1, 20);
  assert.equal(v.inputEnded(0), {}, "stopped at 10: the output stays at 10");
  assert.equal(v.inputWatermark(1, 5000), {}, "a channel still running cannot move it past the stopped one");
  assert.equal(v.inputEnded(1), {});
  assert.is(v.currentWatermark, 10);
  assert.is(v.isIdle, false);
});

valve("two inputs: minimum over inputs, idle inputs excluded", () => {
  const w = new InputsWatermark([1, 2]);
  assert.equal(w.watermark(0, 0, 100), {}, "input 1 has no watermark yet");
  w.watermark(1, 0, 40);
  assert.equal(w.watermark(1, 1, 60), { watermark: 40 });
  assert.equal(w.status(1, 0, true), { watermark: 60 }, "input 1's min is channel 1 now");
  assert.equal(w.status(1, 1, true), { watermark: 100 }, "input 1 idle: only input 0 counts");
  assert.equal(w.status(0, 0, true), { idle: true });
});

const attrs = suite("RecordAttributes propagation");

attrs("within one input: backlog only while every channel says backlog", () => {
  const v = new RecordAttributesValve(2);
  assert.is(v.input(0, true), undefined, "one channel of two: still not backlog");
  assert.is(v.input(1, true), true);
  assert.is(v.input(0, false), false);
  assert.is(v.input(0, false), undefined, "no change, nothing to forward");
});

attrs("finished channels do not hold an input in backlog or out of it", () => {
  const v = new RecordAttributesValve(2);
  v.input(0, true);
  assert.is(v.inputEnded(1), true, "the only live channel is in backlog");
  assert.is(v.inputEnded(0), false, "nothing live: not backlog");
});

attrs("an input that left backlog does not go back to it when a channel ends", () => {
  const v = new RecordAttributesValve(2);
  v.input(0, true);
  assert.is(v.input(1, true), true);
  assert.is(v.input(0, false), false, "channel 0 live: the input is live");
  assert.is(v.inputEnded(0), undefined, "channel 0 ended while channel 1 is still in backlog: stays live (no second sort)");
  assert.is(v.isBacklog, false);
  assert.is(v.input(1, false), undefined);
});

attrs("across inputs: backlog while any input is", () => {
  const a = new InputsAttributes([1, 1]);
  assert.is(a.input(0, 0, true), true);
  assert.is(a.input(1, 0, true), undefined, "still backlog");
  assert.is(a.input(0, 0, false), undefined, "input 1 still backlog");
  assert.is(a.input(1, 0, false), false);
});

valve.run();
attrs.run();
