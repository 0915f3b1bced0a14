// Timers fire back to back: one watermark (the final one above all) can make millions due, and each
// answered from memory never leaves the microtask queue, so NATS I/O, heartbeats, status requests and
// a stop would wait for the last of them. Every TIMERS_BETWEEN_TURNS timers the event loop gets a turn.

export const TIMERS_BETWEEN_TURNS = 1000;

/** Resolves after the event loop's pending I/O and timers had their turn. */
export function nextTurn(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}
