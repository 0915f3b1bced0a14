// Writing cache entries to KV in waves (a flush, a checkpoint's materialization): each entry's JSON
// stored (or its key erased) and the entry marked clean, at most `concurrency` writes pending, with no
// async function and, for most writes, no promise: whatever a pending write holds stays alive until the
// server's ack, and every scavenge copies it (bench/prof-backlog.ts sorted, 300k writes: three nested
// async calls per write allocated 6.7 GB, promise chains 6.0 GB; see writeWave for what it costs now).

import type { CacheEntry, StateCache } from "./cache.ts";
import { noteStored, type RemoteValues } from "./remote-values.ts";

/**
 * The share of `concurrency` that settles before a wave with its window full starts more writes, as a
 * sink's window resumes its writer (runtime/sinks/inflight.ts).
 */
const REFILL_SHARE = 1 / 4;

/**
 * Calls `fn` on every item with at most `concurrency` calls pending; resolves when all have settled,
 * rejects with the first failure (starting no more calls after it).
 */
export function runPool<T>(items: readonly T[], concurrency: number, fn: (item: T) => Promise<void>): Promise<void> {
  if (items.length === 0) return Promise.resolve();
  return new Promise((resolve, reject) => {
    let next = 0;
    let pending = 0;
    let failed = false;
    const settled = (): void => {
      pending--;
      startMore();
    };
    const fail = (e: unknown): void => {
      if (failed) return;
      failed = true;
      reject(e);
    };
    const startMore = (): void => {
      while (!failed && pending < concurrency && next < items.length) {
        let call: Promise<void>;
        try {
          call = fn(items[next++]!);
        } catch (e) {
          fail(e);
          return;
        }
        pending++;
        call.then(settled, fail);
      }
      if (!failed && pending === 0 && next >= items.length) resolve();
    };
    startMore();
  });
}

/** One entry's write: its JSON at `version` (undefined: the value is gone, the key is erased). */
export interface EntryWrite {
  readonly entry: CacheEntry;
  readonly json: string | undefined;
  readonly version: number;
}

/**
 * Writes a wave of entries (a flush, a checkpoint's materialization), at most `concurrency` pending:
 * `prepare(item)` gives an item's write (undefined: nothing to write; a throw: that item failed). Each
 * entry is marked clean at its version once KV has it. Resolves once every write settled. A failure
 * rejects and starts no more, or, with `onFailure`, is reported there and the wave goes on (a flush: one
 * value that cannot be written must not keep the others in memory).
 *
 * A value of one message replacing one message (most of them) goes to the pipe with two functions the
 * wave shares, not a promise: through promise chains, each write made a promise, its closures and
 * reactions, alive until the server's ack, and scavenges copied them (bench/prof-backlog.ts sorted).
 */
export function writeWave<T>(remote: RemoteValues, cache: StateCache, items: readonly T[], concurrency: number, prepare: (item: T) => EntryWrite | undefined, onFailure?: (e: unknown) => void): Promise<void> {
  if (items.length === 0) return Promise.resolve();
  return new Promise((resolve, reject) => {
    let next = 0;
    let pending = 0;
    let failed = false;
    let starting = false;
    // Refilled a share of the window at a time: starting one write per ack sent each put in a socket write
    // of its own (strace of bench/prof-backlog.ts sorted, 500k keys: 155k writes for 205k puts; 10.5k so).
    const refill = Math.max(1, Math.floor(concurrency * REFILL_SHARE));
    const fail = (e: unknown): void => {
      if (onFailure !== undefined) onFailure(e);
      else if (!failed) {
        failed = true;
        reject(e);
      }
    };
    const finished = (): void => {
      pending--;
      if (pending <= concurrency - refill || next >= items.length) startMore();
    };
    const stored = (seq: number, w: EntryWrite): void => {
      noteStored(w.entry, seq);
      cache.markClean(w.entry, w.version);
      finished();
    };
    const writeFailed = (e: unknown): void => {
      fail(e);
      finished();
    };
    const startMore = (): void => {
      // A write that settles at once (a closed pipe) comes back here: the running loop goes on instead.
      if (starting) return;
      starting = true;
      try {
        while (!failed && pending < concurrency && next < items.length) {
          let w: EntryWrite | undefined;
          try {
            w = prepare(items[next++]!);
          } catch (e) {
            fail(e);
            continue;
          }
          if (w === undefined) continue;
          pending++;
          // Buffer.from, not TextEncoder: ~0.1 µs instead of ~1.2 µs for a short string on Node 20.
          const data = w.json === undefined ? undefined : Buffer.from(w.json);
          if (data === undefined || !remote.storeThen(w, data, stored, writeFailed)) writeEntry(remote, cache, w.entry, data, w.version).then(finished, writeFailed);
        }
      } finally {
        starting = false;
      }
      if (!failed && pending === 0 && next >= items.length) resolve();
    };
    startMore();
  });
}

/**
 * The promise form of a write (an erasure, a chunked value): `data` (undefined: the value is gone) becomes
 * entry `e`'s value in KV and the entry is marked clean at `version` (it stays dirty if written again
 * since). An erased entry leaves the cache: KV holds nothing under its key now, unless written again since.
 */
function writeEntry(remote: RemoteValues, cache: StateCache, e: CacheEntry, data: Uint8Array | undefined, version: number): Promise<void> {
  if (data === undefined) {
    return remote.erase(e).then(() => {
      cache.markClean(e, version);
      cache.dropErased(e);
    });
  }
  return remote.store(e, data).then(() => cache.markClean(e, version));
}
