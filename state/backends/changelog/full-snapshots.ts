// A heap backend's full snapshots, key group by key group. A key group whose encoded entries are the same
// bytes as in the last snapshot this backend appended is not appended again: the new snapshot names the
// earlier messages, with the checkpoint that wrote them (their Weir-Checkpoint header, which a restore
// checks). An idle job's checkpoints then append and delete nothing; a busy one rewrites only the key
// groups that changed. Messages are deleted once no snapshot that can still be restored names them.

import { createHash } from "node:crypto";
import { appendResult, type AppendResult, type ChangelogMessage, type ChangelogStream } from "./stream.ts";
import type { DeltaEntry } from "./format.ts";

interface AppendedGroup {
  /** SHA-1 of the key group's encoded parts: equal bytes, equal state. */
  readonly digest: string;
  /** Its messages, each with the checkpoint that appended it. */
  readonly messages: ChangelogMessage[];
}

export class FullSnapshots {
  /** The key groups of the last snapshot this backend appended (none after a restore: all are appended). */
  private readonly last = new Map<number, AppendedGroup>();
  /** The messages each snapshot taken and not yet superseded names, by checkpoint id. */
  private readonly taken = new Map<number, readonly ChangelogMessage[]>();
  /** The newest `retain` checkpoints known complete, oldest first: each stays restorable (`weir run --restore <id>`). */
  private completed: number[] = [];

  /** `retain`: how many completed checkpoints the job keeps (checkpointsRetained). */
  constructor(private readonly stream: ChangelogStream, private readonly retain = 1) {}

  /** Appends the key groups of `byKeyGroup` that changed since the last snapshot; the snapshot names all of them. */
  async take(checkpointId: number, byKeyGroup: ReadonlyMap<number, DeltaEntry[]>): Promise<AppendResult> {
    const encoded = this.stream.encode(byKeyGroup);
    const changed = new Map<number, Uint8Array[]>();
    const digests = new Map<number, string>();
    const reused: ChangelogMessage[] = [];
    for (const [keyGroup, parts] of encoded) {
      const digest = digestOf(parts);
      const before = this.last.get(keyGroup);
      if (before?.digest === digest) reused.push(...before.messages);
      else {
        changed.set(keyGroup, parts);
        digests.set(keyGroup, digest);
      }
    }
    let r: AppendResult;
    try {
      await this.stream.ensure();
      r = changed.size > 0 ? await this.stream.appendEncoded(checkpointId, changed) : appendResult([], 0);
    } catch (e) {
      this.last.clear(); // the stream may be gone (deleted by hand): the next snapshot appends every key group
      throw e;
    }
    for (const keyGroup of [...this.last.keys()]) if (!encoded.has(keyGroup)) this.last.delete(keyGroup);
    for (const [keyGroup, digest] of digests) this.last.set(keyGroup, { digest, messages: [] });
    for (const [kg, seq] of r.messages) this.last.get(kg)!.messages.push([kg, seq, checkpointId]);
    const messages = [...reused, ...r.messages];
    this.taken.set(checkpointId, messages);
    return appendResult(messages, r.bytes);
  }

  /**
   * Checkpoint `checkpointId` committed: the snapshots before the oldest of the newest `retain` complete
   * ones are superseded (the job no longer keeps them). Returns the sequences only they name, to delete;
   * forgets them.
   */
  superseded(checkpointId: number): number[] {
    this.completed = [...this.completed.filter((id) => id !== checkpointId), checkpointId].sort((a, b) => a - b).slice(-this.retain);
    const oldestKept = this.completed[0]!;
    const kept = new Set<number>();
    for (const [id, messages] of this.taken) if (id >= oldestKept) for (const [, seq] of messages) kept.add(seq);
    const dropped = new Set<number>();
    for (const [id, messages] of this.taken) {
      if (id >= oldestKept) continue;
      this.taken.delete(id);
      for (const [, seq] of messages) if (!kept.has(seq)) dropped.add(seq);
    }
    // Never name a deleted message again (a backend whose last snapshot was superseded without a newer one).
    for (const [keyGroup, group] of this.last) if (group.messages.some(([, seq]) => dropped.has(seq))) this.last.delete(keyGroup);
    return [...dropped];
  }
}

function digestOf(parts: readonly Uint8Array[]): string {
  const h = createHash("sha1");
  for (const p of parts) h.update(p);
  return h.digest("base64");
}
