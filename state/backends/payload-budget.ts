// How much of one NATS message weir's own writes may fill: a preferred size (the fastest measured for the
// write), within the server's max_payload less room for headers and the protocol line. Servers may set a
// small max_payload (64 KB, even 2 KB): a fixed size failed every such write, and a margin larger than
// the payload itself looped for ever (audit).

/** Bytes available for a message's data. */
export function payloadBudget(maxPayload: number | undefined, preferred: number, margin: number): number {
  const max = maxPayload ?? 1024 * 1024;
  return Math.max(64, Math.min(preferred, max - Math.min(margin, Math.floor(max / 4))));
}
