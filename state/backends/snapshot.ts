/**
 * What a Get hands out: arrays are copied, because a later Append in the same batch extends the stored
 * list in place and must not change what an earlier Get returned. Other values are replaced whole by
 * writes, never mutated by a backend, so they are returned as stored (users treat state values as immutable).
 */
export function snapshotValue(value: unknown): unknown {
  return Array.isArray(value) ? value.slice() : value;
}
