// Values in KV: JSON text under the entry's key. A value larger than one message (the server's
// max_payload) is split: its chunks go first under `<key>./c-<writeId>-<n>`, then the key itself gets a
// small manifest (a 0x00 byte, which no JSON text starts with, then JSON). A reader follows the manifest of
// the key it read, so it sees either the old value or the new one, never a mix: chunk keys of a new write
// never overwrite the chunks of the value a reader may be following.

import { randomBytes } from "node:crypto";
import { StateAccessError, StateWriteConflictError } from "../../errors.ts";
import { chunkKey } from "./keys.ts";
import { payloadBudget } from "../payload-budget.ts";
import type { KvPipe } from "./pipe.ts";
import type { StoredMessage } from "./pipe-replies.ts";

/** Where the chunks of a chunked value live, so that replacing the value can delete them. */
export interface ChunkRef {
  readonly id: string;
  readonly n: number;
}

/** A value that was stored in chunks: its bytes, where the chunks are, and the sequence of the key's manifest. */
export class ChunkedValue {
  constructor(readonly data: Uint8Array, readonly chunks: ChunkRef, readonly seq: number) {}
}

interface Manifest { readonly weir: "chunks"; readonly id: string; readonly n: number; readonly bytes: number }

const MANIFEST_MARK = 0;
const encoder = new TextEncoder();

/** What writing a cache entry to KV reads and updates of it (state/backends/jetstream-kv/cache.ts). */
export interface StoredEntry {
  readonly key: string;
  chunks: ChunkRef | undefined;
  kvHolds: boolean | undefined;
  /** Sequence of the key's message as this backend last read or wrote it (0: none), when known. */
  kvSeq: number | undefined;
}

/** KV acknowledged the entry's value as message `seq`: it holds the key now. */
export function noteStored(e: StoredEntry, seq: number): void {
  e.kvSeq = seq;
  e.kvHolds = true;
}

/**
 * A worker's writes of an entry's key (through its state write fence) are conditional on a bucket of one
 * replica: each expects the key's message this backend last read or wrote (Nats-Expected-Last-Subject-
 * Sequence), so a write that reaches the server only after another worker took the key group over and wrote
 * the key (a worker frozen with writes in flight, `npm run bench fence`) is refused instead of setting the
 * key back. Not on a replicated bucket, where 2.9.10 does not check the expectation safely (FACTS.md); not
 * for an entry whose key this backend neither read nor wrote (a blind write, a restore's replay); and not in
 * a job of one process, where no other writer can take a key over while the backend runs (the check costs
 * the server a lookup per write: ~5% of a write-bound sorted backlog, docs/state.md).
 */
export class RemoteValues {
  /** Bytes per message: the server's max payload minus room for headers. */
  readonly chunkBytes: number;
  private readonly conditional: boolean;

  constructor(private readonly pipe: KvPipe, maxPayload: number) {
    this.chunkBytes = payloadBudget(maxPayload, Number.POSITIVE_INFINITY, 1024);
    this.conditional = pipe.fenced && !pipe.replicated;
  }

  /** The stored value (a ChunkedValue when the value was split; data undefined when absent) with its sequence. */
  read(key: string): Promise<StoredMessage | ChunkedValue> {
    return this.pipe.read(key).then((m): StoredMessage | Promise<ChunkedValue> => {
      const head = m.data;
      return head === undefined || head.length === 0 || head[0] !== MANIFEST_MARK ? m : this.readChunks(key, head, m.seq);
    });
  }

  /** The sequence a write of `e`'s key expects (0: no message), undefined for an unconditional write. */
  private expected(e: StoredEntry): number | undefined {
    if (!this.conditional) return undefined;
    return e.kvSeq ?? (e.kvHolds === false ? 0 : undefined);
  }

  private async readChunks(key: string, head: Uint8Array, seq: number): Promise<ChunkedValue> {
    const manifest = JSON.parse(new TextDecoder().decode(head.subarray(1))) as Manifest;
    const parts = await Promise.all(Array.from({ length: manifest.n }, (_, i) => this.pipe.get(chunkKey(key, manifest.id, i))));
    const data = new Uint8Array(manifest.bytes);
    let offset = 0;
    for (let i = 0; i < parts.length; i++) {
      const part = parts[i];
      if (part === undefined) throw new StateAccessError(`chunk ${i} of ${manifest.n} of KV key ${key} is missing`);
      data.set(part, offset);
      offset += part.length;
    }
    if (offset !== manifest.bytes) throw new StateAccessError(`KV key ${key}: chunks hold ${offset} bytes, the manifest says ${manifest.bytes}`);
    return new ChunkedValue(data, { id: manifest.id, n: manifest.n }, seq);
  }

  /**
   * Writes `data` (chunked when needed) and then drops the chunks of the value it replaces. Resolves with
   * the chunks written (if any) and the sequence of the key's own message. `expect`: see KvPipe.put.
   */
  async write(key: string, data: Uint8Array, previous: ChunkRef | undefined, expect?: number): Promise<{ chunks: ChunkRef | undefined; seq: number }> {
    let written: ChunkRef | undefined;
    let seq: number;
    if (this.fitsOneMessage(data)) {
      seq = await this.pipe.put(key, data, expect);
    } else {
      const id = randomBytes(6).toString("hex");
      const n = Math.ceil(data.length / this.chunkBytes);
      await Promise.all(Array.from({ length: n }, (_, i) => this.pipe.put(chunkKey(key, id, i), data.subarray(i * this.chunkBytes, (i + 1) * this.chunkBytes))));
      const manifest: Manifest = { weir: "chunks", id, n, bytes: data.length };
      const body = encoder.encode(JSON.stringify(manifest));
      const head = new Uint8Array(body.length + 1);
      head[0] = MANIFEST_MARK;
      head.set(body, 1);
      seq = await this.pipe.put(key, head, expect);
      written = { id, n };
    }
    if (previous) await this.dropChunks(key, previous);
    return { chunks: written, seq };
  }

  /** Writes an entry's value; KV holds the key afterwards. */
  store(e: StoredEntry, data: Uint8Array): Promise<void> {
    // A flush's values of one message replacing one message go through storeThen instead.
    return this.write(e.key, data, e.chunks, this.expected(e)).then(({ chunks, seq }) => {
      e.chunks = chunks;
      noteStored(e, seq);
    });
  }

  /**
   * `store` of a value of one message replacing one message, without a promise: `stored(seq, w)` (which
   * must call noteStored) or `failed(error, w)` follows. False, and nothing sent, when the value needs `store`.
   */
  storeThen<T extends { readonly entry: StoredEntry }>(w: T, data: Uint8Array, stored: (seq: number, w: T) => void, failed: (e: unknown, w: T) => void): boolean {
    if (w.entry.chunks !== undefined || !this.fitsOneMessage(data)) return false;
    this.pipe.putThen(w.entry.key, data, w, stored, failed, this.expected(w.entry));
    return true;
  }

  /** Whether `data` is stored as the key's one message (not chunked, not taken for a manifest). */
  private fitsOneMessage(data: Uint8Array): boolean {
    return data.length <= this.chunkBytes && (data.length === 0 || data[0] !== MANIFEST_MARK);
  }

  /**
   * Removes an entry's value; no request at all when KV is known not to hold the key. The message this
   * backend read or stored is deleted by its sequence (only the key group's owner writes the key, so it is
   * the key's message); when that sequence is unknown (a blind write's entry) or no longer there, the key
   * is purged by subject. On a bucket of one replica a message no longer there must have been deleted by an
   * earlier attempt of this delete: if the key holds a message, another writer owns it now (see RemoteValues).
   */
  async erase(e: StoredEntry): Promise<void> {
    if (e.kvHolds !== false || e.chunks) {
      const seq = e.kvSeq ?? 0; // 0: no message known
      const deleted = seq > 0 && await this.pipe.deleteSeq(seq);
      if (deleted) { if (e.chunks) await this.dropChunks(e.key, e.chunks); }
      else if (this.conditional && seq > 0) {
        const now = await this.pipe.read(e.key);
        if (now.seq !== 0) throw new StateWriteConflictError(this.pipe.bucket, e.key, seq);
        if (e.chunks) await this.dropChunks(e.key, e.chunks);
      } else await this.remove(e.key, e.chunks);
    }
    e.chunks = undefined;
    e.kvHolds = false;
    e.kvSeq = undefined;
  }

  async remove(key: string, previous: ChunkRef | undefined): Promise<void> {
    await this.pipe.erase(key);
    if (previous) await this.dropChunks(key, previous);
  }

  private async dropChunks(key: string, ref: ChunkRef): Promise<void> {
    await Promise.all(Array.from({ length: ref.n }, (_, i) => this.pipe.erase(chunkKey(key, ref.id, i))));
  }
}
