// Hedged creation of a JetStream consumer (why: ConsumerLane.createConsumer in jetstream-lane.ts).

import { isTransientJetStreamError } from "../../state/backends/jetstream-retry.ts";

/**
 * Hedged consumer creation: `first` attempts at once, then one more every `everyMs` while none answered,
 * up to `max`; the first consumer created is taken and any created later deleted. Rejects with the first
 * error once every attempt started failed and no more will start.
 */
export function firstCreated<C extends { delete(): Promise<unknown> }>(attempt: () => Promise<C>, o: { first: number; everyMs: number; max: number }): Promise<C> {
  return new Promise((resolve, reject) => {
    let winner: C | undefined;
    let started = 0;
    let failed = 0;
    let firstError: unknown;
    let timer: NodeJS.Timeout | undefined;
    const launch = (): void => {
      started++;
      attempt().then((c) => {
        if (winner !== undefined) { void c.delete().catch(() => {}); return; }
        winner = c;
        clearInterval(timer);
        resolve(c);
      }, (e: unknown) => {
        firstError ??= e;
        failed++;
        if (winner === undefined && failed === started && (started >= o.max || !isTransientJetStreamError(e))) { clearInterval(timer); reject(firstError); }
      });
    };
    for (let i = 0; i < Math.min(o.first, o.max); i++) launch();
    if (started < o.max) {
      timer = setInterval(() => {
        if (winner !== undefined || started >= o.max) { clearInterval(timer); return; }
        launch();
      }, o.everyMs);
      timer.unref();
    }
  });
}
