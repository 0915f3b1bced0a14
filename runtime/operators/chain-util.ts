// Helpers for operators that emit: keep the promise plumbing cheap when nothing is async.

import type { MaybePromise, Output } from "../contracts/operators.ts";

/** Emits every value of `values`; awaits a downstream promise only when one is returned. */
export function collectAll(out: Output, values: Iterable<unknown>, timestamp: number | undefined): MaybePromise {
  if (Array.isArray(values)) {
    for (let i = 0; i < values.length; i++) {
      const p = out.collect(values[i], timestamp);
      if (p) return continueArray(out, values, i + 1, timestamp, p);
    }
    return;
  }
  const it = values[Symbol.iterator]();
  for (let r = it.next(); !r.done; r = it.next()) {
    const p = out.collect(r.value, timestamp);
    if (p) return continueIterator(out, it, timestamp, p);
  }
}

async function continueArray(out: Output, values: unknown[], from: number, ts: number | undefined, first: Promise<void>): Promise<void> {
  await first;
  for (let i = from; i < values.length; i++) {
    const p = out.collect(values[i], ts);
    if (p) await p;
  }
}

async function continueIterator(out: Output, it: Iterator<unknown>, ts: number | undefined, first: Promise<void>): Promise<void> {
  await first;
  for (let r = it.next(); !r.done; r = it.next()) {
    const p = out.collect(r.value, ts);
    if (p) await p;
  }
}

export function isPromise(x: unknown): x is Promise<unknown> {
  return typeof (x as { then?: unknown } | null)?.then === "function";
}
