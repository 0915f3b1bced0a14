// A subtask's checkpoint snapshot as a worker's acknowledgement carries it to the leader. A keyed subtask's
// names the changelog message of each of its key groups, and a heap snapshot's messages are almost all
// consecutive (key group and sequence both one up): [[64,769],[65,770],…,[95,800]] is ~60% of a keyed
// acknowledgement's bytes. On the wire such a run is one triple with a negative count, [64,769,-32]; a
// message with its writing checkpoint ([keyGroup, seq, writtenAt], writtenAt > 0) stays as it is. Only
// the wire changes: the leader expands the runs, so stored checkpoints keep the form every weir reads.

import type { SubtaskSnapshot } from "../../runtime/checkpoint/metadata.ts";
import type { StateSnapshot } from "../../state/contracts.ts";

type Message = readonly [keyGroup: number, seq: number, writtenAt?: number];
type Messages = NonNullable<StateSnapshot["changelog"]["messages"]>;

/** Consecutive messages (no writtenAt) as runs [keyGroup, seq, -count]; order kept. */
export function packMessages(messages: Messages): Message[] {
  const out: Message[] = [];
  for (let i = 0; i < messages.length;) {
    const [kg, seq, writtenAt] = messages[i]!;
    let n = 1;
    if (writtenAt === undefined) {
      for (; i + n < messages.length; n++) {
        const next = messages[i + n]!;
        if (next[2] !== undefined || next[0] !== kg + n || next[1] !== seq + n) break;
      }
    }
    out.push(n > 1 ? [kg, seq, -n] : messages[i]!);
    i += n;
  }
  return out;
}

/** The messages packMessages packed, one per key group again. */
export function unpackMessages(packed: readonly Message[]): Message[] {
  const out: Message[] = [];
  for (const m of packed) {
    const [kg, seq, third] = m;
    if (third !== undefined && third < 0) for (let j = 0; j < -third; j++) out.push([kg + j, seq + j]);
    else out.push(m);
  }
  return out;
}

const mapMessages = (s: SubtaskSnapshot, f: (m: Messages) => Message[]): SubtaskSnapshot => {
  const keyed = s.keyed;
  if (keyed === undefined) return s;
  const snapshots = keyed.snapshots.map((k) => (k.changelog.messages === undefined ? k : { ...k, changelog: { ...k.changelog, messages: f(k.changelog.messages) } }));
  return { ...s, keyed: { ...keyed, snapshots } };
};

/** The snapshot as an acknowledgement carries it. */
export function packSnapshot(s: SubtaskSnapshot): SubtaskSnapshot {
  return mapMessages(s, packMessages);
}

/** An acknowledged snapshot as the leader stores it. */
export function unpackSnapshot(s: SubtaskSnapshot): SubtaskSnapshot {
  return mapMessages(s, unpackMessages);
}
