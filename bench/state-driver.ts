// Drives keyed "records" through state handles the way the async execution controller (FLIP-425) will:
// up to `inFlight` records at once, records of one key strictly one after another, every state request
// collected into batches of up to 1000 for the backend. Until issue 4's controller exists, the benchmarks
// use this stand-in so that the backend sees the batches it will see in a real job.

import type { KeyedStateBackend, KeyScope, StateRequestHandler } from "../state/contracts.ts";
import { BatchingStateRequestHandler } from "../state/handlers/batching.ts";
import { assignToKeyGroup, canonicalJson } from "../state/key-groups.ts";

export interface DriveOptions {
  readonly operator?: string;
  readonly maxParallelism?: number;
  readonly batchSize?: number;
  readonly inFlight?: number;
}

export type RecordFn<K> = (key: K, scope: KeyScope, handler: StateRequestHandler, index: number) => Promise<void>;

/** Runs `fn` for `count` records, record i having key `keyAt(i)`, and resolves when all are done. */
export async function driveRecords<K>(backend: KeyedStateBackend, count: number, keyAt: (i: number) => K, fn: RecordFn<K>, options: DriveOptions = {}): Promise<void> {
  const operator = options.operator ?? "count";
  const maxParallelism = options.maxParallelism ?? 128;
  const inFlightLimit = options.inFlight ?? 6000;
  const handler = new BatchingStateRequestHandler(backend, options.batchSize ?? 1000);
  const lastOfKey = new Map<string, Promise<void>>();
  let inFlight = 0;
  let failure: unknown;
  const start = (i: number): void => {
    const key = keyAt(i);
    const keyId = canonicalJson(key);
    const scope: KeyScope = { operator, keyGroup: assignToKeyGroup(key, maxParallelism), keyId, key };
    const before = lastOfKey.get(keyId);
    inFlight++;
    const run = (before ? before.then(() => fn(key, scope, handler, i)) : fn(key, scope, handler, i))
      .catch((e: unknown) => { failure ??= e; })
      .finally(() => {
        inFlight--;
        if (lastOfKey.get(keyId) === run) lastOfKey.delete(keyId);
      });
    lastOfKey.set(keyId, run);
  };
  for (let i = 0; i < count; i++) {
    start(i);
    // Like the controller's buffer timeout: when the in-flight limit is reached, send what is buffered.
    while (inFlight >= inFlightLimit) await pump(handler);
    if (failure !== undefined) throw failure;
  }
  while (inFlight > 0) await pump(handler);
  if (failure !== undefined) throw failure;
}

/** Sends the buffered requests, waits for the batches, and lets the records continue (one macrotask). */
async function pump(handler: BatchingStateRequestHandler): Promise<void> {
  await handler.drain();
  await new Promise<void>((resolve) => setImmediate(resolve));
}

/** Deterministic pseudo-random key indexes (uniform over [0, keys)). */
export function uniformKeys(count: number, keys: number, seed = 42): Uint32Array {
  const out = new Uint32Array(count);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < count; i++) {
    x ^= x << 13; x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5; x >>>= 0;
    out[i] = x % keys;
  }
  return out;
}
