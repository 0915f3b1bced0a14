// The timer queue of a keyed operator as pure logic: time order over all keys and per key, deletion,
// and memory bounded by the live timers when a timer is moved on every record (delete, register again).
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { InternalTimerService, type Timer } from "../runtime/keyed/timers/timer-service.ts";

const test = suite("timer queue");
const timer = (timestamp: number, key: string): Timer => ({ timestamp, keyId: key, key, keyGroup: 0 });

test("fires in (time, key) order up to the watermark; a deleted timer never fires", () => {
  const q = new InternalTimerService().eventTime;
  for (const [ts, k] of [[30, "b"], [10, "a"], [20, "c"], [10, "b"], [40, "a"]] as const) q.add(timer(ts, k));
  assert.is(q.add(timer(10, "a")), false, "one timer per (key, time)");
  q.delete(20, "c");
  const fired: string[] = [];
  for (let t = q.pollUpTo(35); t; t = q.pollUpTo(35)) fired.push(`${t.keyId}@${t.timestamp}`);
  assert.equal(fired, ["a@10", "b@10", "b@30"]);
  assert.is(q.size, 1);
});

test("one key's timers in time order, also many on one key and after the queue fired some of them", () => {
  const q = new InternalTimerService().eventTime;
  const n = 20_000;
  for (let i = n - 1; i >= 0; i--) q.add(timer(i * 10, "busy"));
  q.add(timer(5, "other"));
  assert.is(q.pollUpTo(0)?.timestamp, 0, "the queue over all keys fires busy@0");
  let expected = 10;
  for (let t = q.pollFirstForKey("busy", Number.MAX_SAFE_INTEGER); t; t = q.pollFirstForKey("busy", Number.MAX_SAFE_INTEGER)) {
    assert.is(t.timestamp, expected);
    expected += 10;
  }
  assert.is(expected, n * 10, "every timer of busy, once");
  assert.is(q.peek()?.keyId, "other", "the other key's timer is still there");
});

test("a timer moved on every record (deleted, registered again) holds no more than the live timers' entries", () => {
  const q = new InternalTimerService().eventTime;
  for (let i = 0; i < 200_000; i++) {
    q.delete(i, "k");
    q.add(timer(i + 1, "k"));
    q.add(timer(i + 1, `other${i % 10}`));
    q.delete(i + 1, `other${i % 10}`);
  }
  assert.is(q.size, 1);
  assert.ok(q.heldEntries <= 2 * (2 * q.size + 64), `entries held: ${q.heldEntries}`);
  assert.is(q.pollUpTo(Number.MAX_SAFE_INTEGER)?.timestamp, 200_000);
});

test.run();
