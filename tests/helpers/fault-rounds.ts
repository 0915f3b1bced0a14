// How many faults the many-fault tests inject: a few in `npm test` (each round is a process started,
// killed and recovered: seconds), many in `npm run faults` (WEIR_FAULT_ROUNDS), a run of its own.

/** `standard` rounds, or WEIR_FAULT_ROUNDS when set (an integer of at least `standard`). */
export function faultRounds(standard: number): number {
  const given = process.env.WEIR_FAULT_ROUNDS;
  if (given === undefined || given === "") return standard;
  const n = Number(given);
  if (!Number.isSafeInteger(n) || n < standard) throw new Error(`WEIR_FAULT_ROUNDS: expected an integer of at least ${standard}, got ${JSON.stringify(given)}`);
  return n;
}
