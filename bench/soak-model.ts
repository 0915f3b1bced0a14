// What the soak producer publishes and what the soak job must output for it, as arithmetic on the
// record id: record `id` has key index (id * STRIDE) mod keys and event time BASE_TS + floor(id * 1000 / rate),
// so event time advances in step with a producer running at `rate` records per second.

export const BASE_TS = 1_700_000_000_000;
/** A prime: with keys not a multiple of it, consecutive ids visit every key once per `keys` ids. */
const STRIDE = 7919;

export interface SoakModel {
  readonly keys: number;
  readonly rate: number;
  readonly windowMs: number;
}

export function assertModel(m: SoakModel): void {
  if (m.keys % STRIDE === 0) throw new Error(`WEIR_SOAK_KEYS must not be a multiple of ${STRIDE}`);
}

export const keyIndex = (m: SoakModel, id: number): number => (id * STRIDE) % m.keys;
export const keyName = (k: number): string => `k${k}`;
export const eventTime = (m: SoakModel, id: number): number => BASE_TS + Math.floor((id * 1000) / m.rate);
export const windowOf = (m: SoakModel, ts: number): number => Math.floor((ts - BASE_TS) / m.windowMs);

/** Inputs per key among ids 0..published-1. */
export function countsPerKey(m: SoakModel, published: number): Uint32Array {
  const n = new Uint32Array(m.keys);
  for (let id = 0; id < published; id++) n[keyIndex(m, id)]!++;
  return n;
}

/** Inputs per key of window `w` among ids 0..published-1. */
export function windowCounts(m: SoakModel, w: number, published: number): Uint32Array {
  const n = new Uint32Array(m.keys);
  // First id whose event time falls at or after the window's start (event time is monotonic in id).
  const firstId = (t: number) => Math.ceil((t * m.rate) / 1000);
  const lo = firstId(w * m.windowMs);
  const hi = Math.min(published, firstId((w + 1) * m.windowMs));
  for (let id = lo; id < hi; id++) if (windowOf(m, eventTime(m, id)) === w) n[keyIndex(m, id)]!++;
  return n;
}
