// Drives keyed "records" through state handles with the job's own AsyncExecutionController (FLIP-425),
// configured as in a job: up to `inFlight` records at once, records of one key strictly one after
// another, state requests in batches of up to 1000 (or answered at once when they need nothing remote).
// The benchmarks measure the state layer as a job uses it, without sources, exchanges or sinks around it.

import type { KeyedStateBackend, StateRequest, StateRequestHandler } from "../state/contracts.ts";
import { assignToKeyGroup } from "../state/key-groups.ts";
import { AsyncExecutionController } from "../runtime/keyed/async/controller.ts";
import type { ControlledRecord } from "../runtime/keyed/async/controlled-record.ts";
import type { Epoch } from "../runtime/keyed/async/epoch-manager.ts";
import { KeySlotTable, slotsPerGeneration, type KeySlot } from "../runtime/keyed/key-slots.ts";
import { DEFAULT_STATE_BACKEND_CONFIG } from "../state/config.ts";
import { systemClock } from "../runtime/internal.ts";

export interface DriveOptions {
  readonly operator?: string;
  readonly maxParallelism?: number;
  readonly batchSize?: number;
  readonly inFlight?: number;
  /** The backend's state cache entries (its config's): key slots follow it as the keyed operator's do. */
  readonly cacheMaxEntries?: number;
}

/** One record of `key`: its state through `slot.state(descriptor)`, as a keyed function's `ctx.state`. */
export type RecordFn<K> = (key: K, slot: KeySlot, index: number) => Promise<void>;

/** A record as the keyed operator runs one: its key's slot sends the handles' requests to it. */
class DrivenRecord<K> implements ControlledRecord, StateRequestHandler {
  refs = 1;
  epoch!: Epoch;
  watermark: number | undefined = undefined;
  constructor(private readonly controller: AsyncExecutionController, private readonly slot: KeySlot, private readonly fn: RecordFn<K>, private readonly index: number) {}
  get lock(): KeySlot { return this.slot; }
  get key(): unknown { return this.slot.key; }
  run(): Promise<void> {
    this.slot.handler = this;
    return this.fn(this.slot.key as K, this.slot, this.index);
  }
  settle(): undefined { return undefined; }
  submit(request: StateRequest): Promise<unknown> { return this.controller.request(this, request); }
  tryNow(request: StateRequest): unknown { return this.controller.tryNow(this, request); }
}

/** Runs `fn` for `count` records, record i having key `keyAt(i)`, and resolves when all are done. */
export async function driveRecords<K>(backend: KeyedStateBackend, count: number, keyAt: (i: number) => K, fn: RecordFn<K>, options: DriveOptions = {}): Promise<void> {
  const maxParallelism = options.maxParallelism ?? 128;
  const generation = slotsPerGeneration(backend.kind, options.cacheMaxEntries ?? DEFAULT_STATE_BACKEND_CONFIG.cacheMaxEntries);
  const slots = new KeySlotTable(options.operator ?? "count", (key) => assignToKeyGroup(key, maxParallelism), generation);
  let failure: unknown;
  const aec = new AsyncExecutionController(
    backend,
    { bufferSize: options.batchSize ?? 1000, bufferTimeoutMs: 1000, inFlightRecordsLimit: options.inFlight ?? 6000, watermarkMode: "strict" },
    systemClock,
    (e) => { failure ??= e; },
  );
  for (let i = 0; i < count; i++) {
    const p = aec.submit(new DrivenRecord(aec, slots.slotFor(keyAt(i)), fn, i));
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
