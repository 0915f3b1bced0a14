// Two descriptors of one name in one keyed function name one state: of another kind or codec they would
// read each other's values (on the heap a value state read a map's index as null, without a word; other
// mixes failed later with "was the codec changed?"). Flink refuses such a descriptor when it is
// registered; here, when a key first uses the second one.

import type { StateDescriptor } from "../../state/contracts.ts";
import { StateAccessError } from "../../state/errors.ts";

/** What a descriptor stores, as words: its kind and codecs ("map state (string → number)"). */
function shape(d: StateDescriptor): string {
  const codec = (d.codec as { name?: string }).name ?? "?";
  if (d.kind === "map") return `map state (${(d.keyCodec as { name?: string }).name ?? "?"} → ${codec})`;
  return `${d.kind} state (${codec})`;
}

/** Throws when `others` hold a descriptor of `descriptor`'s name that stores something else. */
export function checkStateClash(descriptor: StateDescriptor, others: Iterable<StateDescriptor>, operator: string): void {
  for (const other of others) {
    if (other === descriptor || other.name !== descriptor.name) continue;
    const a = shape(other);
    const b = shape(descriptor);
    if (a !== b) {
      throw new StateAccessError(`state "${descriptor.name}" of operator "${operator}" is declared twice, as a ${a} and as a ${b}: give each state its own name (Flink refuses this too)`);
    }
  }
}
