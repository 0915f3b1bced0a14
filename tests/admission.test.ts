// Admission (runtime/keyed/async/admission.ts) as pure logic: a host whose answers the test sets, state
// batch round trips reported by hand, one probe per turn of the event loop.
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { Admission, MIN_ADMITTED, QUEUEING_FACTOR, QUEUEING_FLOOR_MS } from "../runtime/keyed/async/admission.ts";

const admission = suite("Admission");

function host(limit: number) {
  const h = { waiting: true, inFlight: 0, grew: 0 };
  const a = new Admission(limit, { waiting: () => h.waiting, inFlight: () => h.inFlight, grew: () => { h.grew++; } });
  /** One wait for capacity and the end of its turn of the event loop. */
  const probe = async (): Promise<number> => {
    h.inFlight = a.current;
    a.probe();
    await new Promise((r) => setImmediate(r));
    return a.current;
  };
  /** A state batch sent and answered `ms` later. */
  const answer = (ms: number): void => { a.batchSent(); a.batchAnswered(ms); };
  return { h, a, probe, answer };
}

admission("still waiting at the end of a turn: doubles up to the limit, and says so", async () => {
  const { h, a, probe } = host(300);
  assert.is(a.current, MIN_ADMITTED);
  assert.is(await probe(), 64);
  assert.is(await probe(), 128);
  assert.is(await probe(), 256);
  assert.is(await probe(), 300);
  assert.is(await probe(), 300);
  assert.is(h.grew, 4);
});

admission("state batches that queue: stops growing at QUEUEING_FACTOR x the quickest round trip, halves past twice that", async () => {
  const { h, probe, answer } = host(6000);
  const quickest = 3;
  const steady = (ms: number) => { for (let i = 0; i < 30; i++) answer(ms); };
  assert.ok(QUEUEING_FACTOR * quickest >= QUEUEING_FLOOR_MS, "the test's round trips are above the floor");
  answer(quickest);
  assert.is(await probe(), 64, "round trips at their quickest: grows");
  steady(1.5 * QUEUEING_FACTOR * quickest);
  assert.is(await probe(), 64, "round trips past the factor: holds");
  const grewBefore = h.grew;
  steady(3 * QUEUEING_FACTOR * quickest);
  assert.is(await probe(), 32, "past twice the factor: halves");
  assert.is(await probe(), MIN_ADMITTED, "never below MIN_ADMITTED");
  assert.is(h.grew, grewBefore, "no growth while batches queue");
  steady(quickest);
  assert.is(await probe(), 64, "round trips quick again: grows again");
});

admission("round trips under QUEUEING_FLOOR_MS never hold growth back, however many times the quickest", async () => {
  const { a, probe, answer } = host(1000);
  answer(0.05);
  for (let i = 0; i < 20; i++) answer(QUEUEING_FLOOR_MS * 0.9);
  let current = a.current;
  for (let i = 0; i < 6; i++) current = await probe();
  assert.is(current, 1000);
});

admission("while state batches are out, one growth per batch answered (not one per turn of the event loop)", async () => {
  const { h, a, probe, answer } = host(6000);
  answer(1);
  a.batchSent();
  assert.is(await probe(), 64, "a batch was answered since the start: grows");
  assert.is(await probe(), 64, "none answered since: holds");
  assert.is(await probe(), 64);
  a.batchAnswered(1);
  a.batchSent();
  assert.is(await probe(), 128, "one answered: grows once");
  assert.is(await probe(), 128);
  a.batchAnswered(undefined);
  assert.is(await probe(), 256, "no batch out (the last one failed): grows every turn again");
  assert.is(await probe(), 512);
  assert.is(h.grew, 4);
});

admission("not waiting at the end of the turn with few records left: halves, not below MIN_ADMITTED", async () => {
  const { h, a, probe } = host(6000);
  await probe();
  await probe();
  assert.is(a.current, 128);
  h.waiting = false;
  a.probe();
  h.inFlight = 10;
  await new Promise((r) => setImmediate(r));
  assert.is(a.current, 64);
  a.probe();
  await new Promise((r) => setImmediate(r));
  a.probe();
  await new Promise((r) => setImmediate(r));
  assert.is(a.current, MIN_ADMITTED);
});

admission("a smaller limit (debloating) caps admission at once", async () => {
  const { a, probe } = host(6000);
  await probe();
  await probe();
  a.setLimit(40);
  assert.is(a.current, 40);
  assert.is(await probe(), 40);
});

admission.run();
