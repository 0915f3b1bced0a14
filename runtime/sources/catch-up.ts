// When a JetStream source lane reads its backlog without a filter subject.
//
// nats-server before 2.9.15 (the Debian package is 2.9.10) recomputes a filtered consumer's pending count
// for every message it delivers when the consumer was created in the first half of the last file block
// that holds its subject: `(*msgBlock).filteredPendingLocked` in server/filestore.go, in the branch that
// counts the messages before the start instead of after it, never sets `last`, so the consumer's cached
// count (`npcm` in server/consumer.go, `numPending`) stays unset and every delivery scans the block from
// its first message to the consumer's position again. Fixed in 2.9.15 ("Optimized and fixed a bug in
// filestore filteredPending()", nats-server commit daacbf5). Measured here with 60k messages on two
// subjects in one block (bench-free repro in tests/source-catch-up.test.ts's comment): a filtered
// consumer started at sequence 5,000 delivered 581 messages/s, the same range unfiltered 34.8k/s, and a
// filtered one started past the block's middle 121k/s. A job restored from a checkpoint lands exactly
// there (its offsets are shortly behind the head), and crawled at ~500 records/s with the server at 100%.
//
// So a lane whose start is within reach of that block (less than two blocks' worth of bytes behind the
// stream's head, and more than a small lag) reads unfiltered, dropping other subjects' messages, until it
// is close to the head; then it continues on a filtered consumer, created where the scan is short. What it
// reads for nothing is bounded by those two blocks (16 MB), once per lane at start.

/** Largest file block of nats-server 2.9 (`maxBlockSize`, server/filestore.go): 8 MB. */
const BLOCK_BYTES = 8 * 1024 * 1024;

/** Below this many messages behind the head a filtered consumer's scans cost little (≤ 1000 lookups each). */
export const SMALL_LAG = 1000;

/** Whether the connected server has the per-message pending scan (a version before 2.9.15). */
export function serverScansPendingPerMessage(version: string | undefined): boolean {
  const m = /^v?(\d+)\.(\d+)\.(\d+)/.exec(version ?? "");
  if (!m) return false;
  const [major, minor, patch] = [Number(m[1]), Number(m[2]), Number(m[3])];
  return major < 2 || (major === 2 && (minor < 9 || (minor === 9 && patch < 15)));
}

/** The stream's head when the source opened, and its mean stored message size. */
export interface StreamHead {
  readonly lastSeq: number;
  readonly bytesPerMessage: number;
}

/** Whether a lane starting at sequence `from` should read unfiltered until it is near the head. */
export function readsUnfilteredFrom(from: number, head: StreamHead): boolean {
  const behind = head.lastSeq - from + 1;
  return behind > SMALL_LAG && behind * head.bytesPerMessage < 2 * BLOCK_BYTES;
}

