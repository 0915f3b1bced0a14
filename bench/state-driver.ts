// Drives keyed "records" through state handles with the job's own AsyncExecutionController (FLIP-425),
// configured as in a job: up to `inFlight` records at once, records of one key strictly one after
// another, state requests in batches of up to 1000 (or answered at once when they need nothing remote).
// The benchmarks measure the state layer as a job uses it, without sources, exchanges or sinks around it.

import type { KeyedStateBackend, KeyScope, StateRequestHandler } from "../state/contracts.ts";
import { assignToKeyGroup, canonicalJson } from "../state/key-groups.ts";
import { AsyncExecutionController } from "../runtime/keyed/async/controller.ts";
import { systemClock } from "../runtime/internal.ts";

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
  let failure: unknown;
  const aec = new AsyncExecutionController(
    backend,
    { bufferSize: options.batchSize ?? 1000, bufferTimeoutMs: 1000, inFlightRecordsLimit: options.inFlight ?? 6000, watermarkMode: "strict" },
    systemClock,
    (e) => { failure ??= e; },
  );
  for (let i = 0; i < count; i++) {
    const key = keyAt(i);
    const keyId = canonicalJson(key);
    const scope: KeyScope = { operator, keyGroup: assignToKeyGroup(key, maxParallelism), keyId, key };
    const p = aec.submitRecord(keyId, key, { run: (record) => fn(key, scope, record, i) });
    if (p) await p;
    if (failure !== undefined) throw failure;
  }
  await aec.drain();
  aec.close();
  if (failure !== undefined) throw failure;
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
