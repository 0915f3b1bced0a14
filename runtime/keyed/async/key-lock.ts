// Strict per-key order (FLIP-425, the default agreed in the seed thread): a record whose key already has
// a record in flight waits, before its processElement starts, and starts when the earlier one finishes.
// FIFO per key, so same-key records (and timers) run in arrival order. The lock is a field pair on an
// object the caller keeps per key (the keyed operator's KeySlot), so taking it costs no lookup; callers
// without such an object use KeyLocks, a table of them by key id.

export interface KeyLock {
  /** A record of the key is running. */
  busy: boolean;
  /** Records of the key waiting behind it, in arrival order (undefined: none yet). */
  waiting: unknown[] | undefined;
  /** The controller's tick when the running record started (stall detection: async-execution.ts). */
  startedTick: number;
  /** Called when the key goes idle (nothing running, nothing waiting). */
  idle?(): void;
}

/** Locks by key id, for callers that keep no per-key object; an idle key's lock is forgotten. */
export class KeyLocks {
  private readonly locks = new Map<string, KeyLock>();

  lockFor(keyId: string): KeyLock {
    let lock = this.locks.get(keyId);
    if (lock === undefined) this.locks.set(keyId, (lock = new TableLock(this.locks, keyId)));
    return lock;
  }
}

/** A KeyLock that removes itself from its table when its key goes idle. */
class TableLock implements KeyLock {
  busy = false;
  waiting: unknown[] | undefined = undefined;
  startedTick = 0;
  constructor(private readonly table: Map<string, KeyLock>, private readonly keyId: string) {}
  idle(): void { this.table.delete(this.keyId); }
}
