// A backend whose bucket held nothing when it opened (a new job, no restore) knows that a key it never
// wrote is absent from KV: a cache miss on it needs no remote read. That is most misses while a new job
// builds its state (e.g. a backlog bootstrapping 100k keys). An entry leaves the cache only once KV has it
// (dirty entries are never evicted) or once KV acknowledged its removal (StateCache.dropErased), so the
// keys KV may hold are among the evicted ones. They are kept in a Bloom filter (fixed memory, no false
// negatives): a false positive only costs the read it would have cost anyway, and as the filter fills up,
// more misses read KV.

/** Bits of the filter: 2 MiB, ~0.2% false positives at 1M evicted keys, ~14% at 4M. */
const BITS = 1 << 24;
const HASHES = 4;

export class FreshBucketKeys {
  private bits: Uint32Array | undefined = new Uint32Array(BITS / 32);
  private evicted = 0;

  /** KV holds nothing at all yet: every key is absent (nothing evicted, nothing else wrote KV). */
  get empty(): boolean {
    return this.bits !== undefined && this.evicted === 0;
  }

  /** KV cannot hold `key`: it was never evicted from this backend's cache (so never written and dropped). */
  isAbsent(key: string): boolean {
    const bits = this.bits;
    if (bits === undefined) return false;
    // Nothing evicted, no bit set: no need to hash (a sorted drain asks this once a key, 100k keys ~40 ms).
    if (this.evicted === 0) return true;
    this.hash(key);
    const h1 = this.h1;
    const h2 = this.h2;
    for (let i = 0; i < HASHES; i++) {
      const bit = (h1 + Math.imul(i, h2)) & (BITS - 1);
      if ((bits[bit >>> 5]! & (1 << (bit & 31))) === 0) return true;
    }
    return false;
  }

  onEvict(key: string): void {
    const bits = this.bits;
    if (bits === undefined) return;
    this.evicted++;
    this.hash(key);
    const h1 = this.h1;
    const h2 = this.h2;
    for (let i = 0; i < HASHES; i++) {
      const bit = (h1 + Math.imul(i, h2)) & (BITS - 1);
      bits[bit >>> 5]! |= 1 << (bit & 31);
    }
  }

  /** The key's two hashes (hash): fields, not a pair per call (a miss of a large state asks for them). */
  private h1 = 0;
  private h2 = 0;

  /** Two 32-bit hashes of the key (FNV-1a and a multiplicative one, each finalized), into h1 and h2: double hashing. */
  private hash(key: string): void {
    let a = 0x811c9dc5;
    let b = 0x9747b28c;
    for (let i = 0; i < key.length; i++) {
      const c = key.charCodeAt(i);
      a = Math.imul(a ^ c, 0x01000193);
      b = Math.imul(b ^ c, 0x5bd1e995);
      b ^= b >>> 15;
    }
    this.h1 = fmix(a);
    this.h2 = fmix(b) | 1;
  }

  /** Something else wrote KV (a restore): from now on every miss reads it. */
  forget(): void {
    this.bits = undefined;
  }
}

/** murmur3's finalizer: spreads every input bit over the output. */
function fmix(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  return (h ^ (h >>> 16)) >>> 0;
}
