// The buffer debloater's sizing (a simulated clock: the subtask feeds it counters and times).
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { BufferDebloater } from "../runtime/transport/buffer-debloater.ts";

const s = suite("buffer debloater");

/** Feeds `seconds` of work at `rate` records per busy second, `idleShare` of the time idle, sampling every 100 ms. */
function run(d: BufferDebloater, from: { t: number; records: number; idle: number }, seconds: number, rate: number, idleShare = 0): boolean {
  let changed = false;
  for (let i = 0; i < seconds * 10; i++) {
    from.t += 100;
    from.idle += 100 * idleShare;
    from.records += (rate * (100 * (1 - idleShare))) / 1000;
    if (d.due(from.t)) changed = d.sample(from.t, Math.round(from.records), from.idle) || changed;
  }
  return changed;
}

s("a slow consumer asks for frames holding about the target time of its work", () => {
  const d = new BufferDebloater({ targetMs: 1000, maxRecordsPerFrame: 500, framesInFlight: 16 });
  const c = { t: 0, records: 0, idle: 0 };
  d.sample(0, 0, 0);
  assert.ok(run(d, c, 3, 200), "the frame size changed");
  assert.ok(Math.abs(d.throughput! - 200) < 5, `measured ${d.throughput}`);
  assert.is(d.recordsBudget(), 200);
  assert.is(d.recordsPerFrame, 13); // 200 records over 16 frames in flight
});

s("a fast consumer keeps full frames, and time waiting for input does not make it look slow", () => {
  const d = new BufferDebloater({ targetMs: 1000, maxRecordsPerFrame: 500, framesInFlight: 16 });
  const c = { t: 0, records: 0, idle: 0 };
  d.sample(0, 0, 0);
  run(d, c, 2, 1_000_000, 0.99);
  assert.is(d.recordsPerFrame, 500);
  assert.ok(d.throughput! > 900_000, `measured ${d.throughput}`);
});

s("starts with small frames, grows to full ones as soon as it measures a fast consumer, shrinks again when it slows", () => {
  const d = new BufferDebloater({ targetMs: 1000, maxRecordsPerFrame: 500, framesInFlight: 16 });
  assert.is(d.recordsPerFrame, 4);
  assert.is(d.recordsBudget(), undefined);
  const c = { t: 0, records: 0, idle: 0 };
  d.sample(0, 0, 0);
  run(d, c, 0.2, 50_000);
  assert.is(d.recordsPerFrame, 500);
  run(d, c, 5, 100);
  // 100 records over 16 frames: 7, give or take the announcement threshold.
  assert.ok(d.recordsPerFrame <= 9, `shrank to ${d.recordsPerFrame}`);
});

s("work arriving after a period without any is measured after the first, short period, not a whole one", () => {
  const d = new BufferDebloater({ targetMs: 1000, maxRecordsPerFrame: 500, framesInFlight: 16, periodMs: 50 });
  d.sample(0, 0, 0);
  // Starved for two seconds (a sink downstream of a backlog being sorted), sampled as frames come: none.
  assert.not.ok(d.sample(10, 0, 10));
  assert.is(d.recordsPerFrame, 4);
  // Work arrives at 2,000 ms: the sample taken as its first frame is handled finds no records yet.
  assert.ok(d.due(2000));
  assert.not.ok(d.sample(2000, 0, 2000));
  // 10 ms of work at a million records a second: measured then, frames full from there on.
  assert.ok(d.due(2010), "a sample is due 10 ms after work arrived");
  assert.ok(d.sample(2010, 10_000, 2000));
  assert.is(d.recordsPerFrame, 500);
});

s("a period without work changes nothing; small moves under the threshold are not announced", () => {
  const d = new BufferDebloater({ targetMs: 1000, maxRecordsPerFrame: 500, framesInFlight: 10 });
  const c = { t: 0, records: 0, idle: 0 };
  d.sample(0, 0, 0);
  run(d, c, 3, 1000);
  assert.is(d.recordsPerFrame, 100);
  const before = d.throughput;
  assert.not.ok(run(d, c, 1, 0, 1), "idle: no change");
  assert.is(d.throughput, before);
  assert.not.ok(run(d, c, 3, 1150), "15% faster: not announced");
  assert.is(d.recordsPerFrame, 100);
  assert.ok(run(d, c, 3, 2000), "twice as fast: announced");
  assert.ok(d.recordsPerFrame > 160 && d.recordsPerFrame <= 200, `grew to ${d.recordsPerFrame}`);
});

s("a sample after a long blocked stretch replaces the estimate (time-weighted average)", () => {
  const d = new BufferDebloater({ targetMs: 1000, maxRecordsPerFrame: 500, framesInFlight: 0 });
  d.sample(0, 0, 0);
  d.sample(100, 5000, 0); // 50k/s
  d.sample(3100, 5300, 0); // 300 records in 3 s of work (blocked on output)
  assert.ok(d.throughput! < 300, `measured ${d.throughput}, not 50k`);
  assert.is(d.recordsPerFrame, 4, "no channels: the frame size is not used");
});

s("rejects a target that is not positive", () => {
  assert.throws(() => new BufferDebloater({ targetMs: 0, maxRecordsPerFrame: 500, framesInFlight: 8 }), /positive target/);
});

s.run();
